"""The root of every error Edgewise raises on purpose, and the whole tree of them.

Each domain keeps its errors in its own ``errors.py``, or next to the one module that raises them. In the
tree, a name ending in ``/`` is a package, not a class; a class is named by its module relative to the
package above it, and a class without a module lives in its parent's module. ``(also X)`` marks a second,
built-in base. ``tests/test_errors.py`` fails when an ``EdgewiseError`` subclass in ``src/`` is missing here.

EdgewiseError
 ├── versions.VersionError                    a version or version range that does not parse
 ├── topics.TopicError                        a topic name or filter that is not valid
 ├── recipe.RecipeError                       a recipe that cannot be used (``problems`` lists them all)
 ├── protocol/                                device↔cloud messages
 │    ├── client_devices.ClientDeviceProtocolError  a client-device payload that breaks the protocol
 │    ├── deployment.DeploymentDocumentError  a deployment document that cannot be applied
 │    ├── device_config.DeviceConfigError     a device configuration file that is not valid
 │    ├── health.StatusMessageError           a fleet status or presence payload that breaks the protocol
 │    ├── jobs.errors.JobsPayloadError        a jobs reply or notification that does not parse
 │    ├── jobs.errors.JobsRejection           a jobs request answered on ``/rejected`` (AWS's error code)
 │    ├── logs.LogsPayloadError               a log batch the cloud refuses
 │    ├── model_package.ModelPackageError     a model package with a bad manifest, a missing file or a wrong digest
 │    │    └── ModelSignatureError            a package signature missing, malformed or by no trusted key
 │    ├── provisioning.ProvisioningPayloadError  a provisioning request or reply that does not parse
 │    ├── resolve.ResolveRequestError         a component resolution request the cloud refuses
 │    ├── resolve.ResolveAnswerError          a component resolution answer the device cannot use
 │    ├── shadow.errors.ShadowError           a rejected shadow request (``code`` is AWS IoT's status)
 │    │    ├── InvalidShadowRequestError      400: a malformed request or an invalid name
 │    │    ├── ShadowNotFoundError            404: no such shadow
 │    │    ├── ShadowVersionConflictError     409: the request's version is not the shadow's
 │    │    └── PayloadTooLargeError           413: the request or the resulting state is too large
 │    └── telemetry.TelemetryPayloadError     a telemetry export batch the cloud refuses
 ├── runtime/
 │    ├── kernel.RootBusyError                another runtime already runs on this root
 │    ├── config.errors.ConfigError           a configuration value, path or update that cannot be used
 │    │    ├── InvalidPointerError            a JSON pointer that does not parse
 │    │    └── StaleUpdateError               a strict merge over a node changed after the update
 │    ├── lifecycle.errors.LifecycleError     the supervisor cannot do what was asked
 │    │    ├── ComponentNotSupervisedError    (also LookupError) no component of that name is supervised
 │    │    └── StepError                      a lifecycle step that could not be started
 │    ├── lifecycle.cgroups.CgroupError       a resource limit cgroup v2 cannot enforce here
 │    ├── deployment.resolution.ResolutionError  no set of component versions satisfies every requirement
 │    ├── deployment.deferral.UpdateNotPendingError  a deferral that answers no update event
 │    ├── deployment.validation.ValidationNotPendingError  a validity report that answers no validation event
 │    ├── deployment.errors.DeploymentError   a deployment that cannot be carried out (the reason users see)
 │    │    ├── DocumentError                  a malformed deployment request
 │    │    ├── PackageError                   a recipe or artifact the component store cannot take
 │    │    ├── fleet.errors.ArtifactDownloadError    an artifact not downloaded, or not what the recipe says
 │    │    └── fleet.errors.ComponentResolveError    recipes the cloud could not provide
 │    ├── ipc.errors.IpcError                 an IPC call that failed
 │    │    ├── ipc.client.IpcCallError        the runtime answered the CLI client's call with an error
 │    │    ├── FrameError                     bytes that are not a valid eventstream message
 │    │    │    └── ipc.eventstream.FrameTooLargeError  a message longer than the decoder accepts
 │    │    └── ModeledError                   sent to the client as the Greengrass error shape of its name
 │    │         ├── ServiceError
 │    │         ├── UnauthorizedError
 │    │         ├── ResourceNotFoundError
 │    │         ├── InvalidArgumentsError
 │    │         ├── ComponentNotFoundError
 │    │         ├── ConflictError
 │    │         ├── FailedUpdateConditionCheckError
 │    │         ├── InvalidTokenError
 │    │         ├── InvalidArtifactsDirectoryPathError
 │    │         ├── InvalidRecipeDirectoryPathError
 │    │         ├── InvalidClientDeviceAuthTokenError
 │    │         └── InvalidCredentialError
 │    ├── cloudlink.errors.CloudLinkError     the MQTT connection to the cloud failed a request
 │    │    ├── CloudLinkClosedError           (also RuntimeError) the link was used after it was closed
 │    │    ├── MessageTooLargeError           a message that could never fit in the spool
 │    │    ├── NotConnectedError              a QoS 0 message published while offline was dropped
 │    │    └── SubscriptionError              a subscription that cannot be made
 │    ├── cloudlink.errors.ConfigFileError    the runtime configuration file is unreadable or invalid
 │    ├── streams.errors.StreamError          a refused message stream request (``status``: the SDK's code)
 │    │    ├── StreamNotFoundError            no stream of that name
 │    │    ├── InvalidStreamRequestError      a field with a bad value, or a stream that already exists
 │    │    │    ├── StreamUpdateNotAllowedError  a field an update may not change
 │    │    │    └── StreamFullError            an append to a full ``RejectNewData`` stream
 │    │    ├── StreamPayloadTooLargeError     a message larger than the stream accepts
 │    │    ├── StreamResponseTooLargeError    a read whose minimum message count exceeds one answer
 │    │    ├── NotEnoughMessagesError         fewer messages than asked for before the read timed out
 │    │    ├── StreamReadError                stored messages that cannot be read back
 │    │    ├── StreamWriteError               a message the disk did not take
 │    │    └── StreamClosedError              the store closed while the request waited
 │    ├── streams.wire.WireFormatError        bytes that are not a valid stream manager frame or request
 │    ├── streams.export.ExportDeliveryError  an export batch that got no answer (it is sent again)
 │    ├── streams.export.TaskFailedError  an S3 export task that cannot succeed (its status says Failure)
 │    ├── stream_component.StreamConfigurationError  a stream manager configuration value that cannot be used
 │    ├── log_component.LogConfigurationError  a log manager configuration value that cannot be used
 │    ├── log_upload.LogDeliveryError         a log batch the cloud did not answer (sent again later)
 │    ├── shadow.settings.ShadowConfigurationError  a shadow manager configuration value that cannot be used
 │    ├── shadow.sync_cloud.CloudShadowUnavailableError  a shadow sync request the cloud did not answer
 │    ├── shadow.sync_cloud.CloudShadowRejectedError  a shadow sync request the cloud refused (``code``)
 │    ├── clientdevices.errors.ClientDeviceConfigurationError  a client-device built-in's value that cannot be used
 │    ├── clientdevices.connect_packet.ConnectPacketError  a client device's first packet, not a usable CONNECT
 │    ├── clientdevices.broker.LocalBrokerError  the local Mosquitto cannot start or reload (or is not installed)
 │    ├── clientdevices.bridge.BridgeStartupError  the MQTT bridge's subscriptions not in place in time
 │    ├── metrics.errors.MetricError          a metric or a metrics file that cannot be used
 │    │    ├── InvalidMetricError             one field of a measurement is wrong
 │    │    └── MetricLimitError               more metric series than the runtime keeps for a component
 │    ├── secrets.errors.SecretError          a secret that cannot be stored or read
 │    │    ├── SecretNotFoundError            the secret, version or stage is not on this device
 │    │    └── SecretStoreError               the key file or the encrypted values are unusable
 │    └── provisioning.errors.ClaimError      provisioning by claim failed
 │         ├── ClaimConnectionError           the broker could not be reached or closed the connection
 │         ├── ClaimNotAuthorizedError        the broker refused the claim certificate a provisioning topic
 │         ├── ClaimRejectedError             the cloud refused a request on its ``/rejected`` topic
 │         └── ClaimTimeoutError              nothing answered a step before its deadline
 ├── cloud/
 │    ├── errors.CloudError                   an API request refused; ``code`` is what clients match on
 │    │    ├── InvalidRequestError            a field with a bad value
 │    │    │    ├── components.errors.DigestMismatchError      bytes whose SHA-256 is not the expected one
 │    │    │    ├── components.service.PublishRejectedError    a component version that cannot be published
 │    │    │    ├── provisioning.template.TemplateError        a provisioning template body refused
 │    │    │    └── rules.sql.RuleSqlError     rule SQL or a template that does not parse (line, column, offset)
 │    │    ├── NotFoundError                  no such resource
 │    │    │    └── components.errors.ArtifactNotFoundError    no artifact with this SHA-256 is stored
 │    │    ├── CloudConflictError             the request clashes with the current state
 │    │    │    ├── AlreadyExistsError        a resource with that name exists
 │    │    │    ├── VersionConflictError      the expected version is not the current one
 │    │    │    ├── LimitExceededError        a documented limit would be exceeded
 │    │    │    └── components.uploads.UploadOffsetError       a chunk that does not continue the upload
 │    │    ├── AuthenticationError            no token, or a token we do not know
 │    │    ├── PermissionDeniedError          the token's role does not allow the request
 │    │    ├── MlUnavailableError             the ML libraries are not installed (503 ``ml_unavailable``)
 │    │    └── broker.hook.BrokerHookRequestError  400: a broker hook call whose body cannot be read
 │    ├── broker.errors.BrokerError           the managed Mosquitto broker failed
 │    │    ├── BrokerConfigError              (also ValueError) a setting that cannot be rendered
 │    │    ├── BrokerStartError               Mosquitto did not start listening
 │    │    ├── BrokerReloadError              Mosquitto failed to re-read its files
 │    │    ├── BrokerControlError             a control action on a client was not carried out
 │    │    └── BrokerNotRunningError          (also RuntimeError) the broker is stopped
 │    ├── identity.errors.IdentityError       certificates, keys and policies
 │    │    ├── CertificateError               a certificate, CSR, key or CA input that cannot be used
 │    │    ├── CertificateStatusError         a status change the certificate lifecycle does not allow
 │    │    └── PolicyError                    a policy document that cannot be used
 │    ├── components.errors.ArtifactStoreError    the artifact store failed
 │    ├── dataplane.signing.SignatureError    a download URL whose signature is missing, wrong or expired
 │    ├── dataplane.signing.SigningKeyError   the signing key file does not hold a key
 │    ├── dataplane.server.DataPlaneStartError    the data plane cannot start
 │    ├── https_publish.errors.PublishRefusedError  an HTTPS publish answered with an error (AWS's shape)
 │    │    ├── InvalidPublishRequestError     400: a malformed request, topic or parameter
 │    │    ├── PublishForbiddenError          403: the certificate or its policies do not allow it
 │    │    ├── PublishTargetNotFoundError     404: a path other than ``/topics/<topic>``
 │    │    ├── PublishMethodNotAllowedError   405: a method other than POST
 │    │    ├── PublishPayloadTooLargeError    413: a body over the 128 KiB a message may have
 │    │    ├── PublishUnavailableError        503: the broker did not take the message
 │    │    ├── UploadLengthRequiredError      411: an object upload without Content-Length
 │    │    ├── UploadDigestMismatchError      400: an object whose bytes miss their declared SHA-256
 │    │    └── UploadUnavailableError         503: the object store did not take the upload
 │    ├── https_publish.errors.HttpsPublishStartError  the HTTPS publish listener cannot start
 │    ├── jobs.secrets.SecretSealError        a sealed job secret that does not open under this cloud's key
 │    ├── workerlink.PacketTooLargeError      a message larger than the broker's Maximum Packet Size
 │    ├── rules.actions.RuleActionError       a rule action that failed for one message
 │    ├── console.api.ConsoleApiError         the API refused a console request (``status``, the API's message)
 │    ├── console.session.LoginRequiredError  a console request without a live session (sent to log in)
 │    └── errors.CloudStartError              the cloud cannot start
 ├── components/                              components that ship with Edgewise
 │    ├── inference.errors.InferenceConfigError  an inference configuration value that cannot be used
 │    ├── inference.errors.ModelLoadError     a verified model that does not load or fails its smoke test
 │    ├── inference.errors.PayloadError       a message a model cannot use (counted and skipped)
 │    ├── image_classification.errors.ImageError  an image that is not a readable PGM or PNG (skipped)
 │    ├── image_classification.errors.ImageModelError  a model store whose model or labels cannot be used
 │    └── image_classification.errors.ImageClassificationConfigError  a configuration value it cannot use
 ├── ml/                                      the ML pipeline (cloud and CLI only)
 │    └── errors.MlError                      an ML pipeline request that cannot be carried out
 │         ├── MlNameError                    a dataset or model name that is not valid
 │         ├── DatasetError                   a dataset that cannot be built, read or described
 │         ├── TrainingError                  a training run that cannot produce a model
 │         ├── ExportError                    a model that cannot be converted to ONNX
 │         │    └── FidelityError             ONNX outputs that differ from the native model's
 │         ├── RegistryError                  a model registry request that failed (``not_found``)
 │         └── drift.DriftError               values that cannot be compared for drift
 └── cli/
      └── greengrass_logs.LogQueryError       a ``logs get`` option that cannot be used
"""

from __future__ import annotations


class EdgewiseError(Exception):
    """Base class of the errors Edgewise raises on purpose."""
