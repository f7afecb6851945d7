"""Serving models over IPC: messages in, results out, configuration followed and model versions hot-swapped.

:class:`InferenceServer` is everything but IPC: the served models, turning one message into results, the
counters, and the swap of a model's reference. :class:`InferenceComponent` wires it to the awsiotsdk V2 client:
one SubscribeToTopic per model input topic, PublishToTopic (and PublishToIoTCore) per result,
SubscribeToConfigurationUpdate to follow the configuration.

Threads: messages are handled on the IPC connection's own thread as they arrive (not on the V2 client's executor),
so a model's messages are handled one at a time and in order, with no thread hand-over between a message and
its result. Configuration updates only queue a request; a reload thread reads the configuration and
verifies, loads and smoke-tests each new model version while the old one keeps serving, then swaps the model's
reference, so no message waits for a load and none is dropped. The model a swap replaces stays loaded, and a
configuration naming it again swaps it back at once. A counters thread logs, every ``countersIntervalSeconds``,
each model's counts of messages, results, skipped messages (a field missing or not a number), malformed ones
(not a JSON object) and failed inferences, with those of capture, challenger and drift detector, when they
changed.

After each result, on the message path: the model's drift detector takes its score (a drift event is published
on the detector's topic), a share of the rows is queued for the challenger (``shadow``: its own thread, which
decides their capture once it has answered), and the other rows' capture is decided and queued (``capture``: one
thread appends to the stream manager). A model's challenger joins once loaded, after the model serves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgewise.components.inference.capture import CaptureWriter, capture_reason, score_of
from edgewise.components.inference.config import InferenceConfig, ServedModelConfig, parse_config
from edgewise.components.inference.drift import ScoreDriftDetector, drift_event
from edgewise.components.inference.errors import InferenceConfigError, ModelLoadError, PayloadError
from edgewise.components.inference.model import LoadedModel, load_model
from edgewise.components.inference.shadow import (
    Challenger,
    ShadowOutcome,
    ShadowRun,
    ShadowRunner,
    challenger_for,
)
from edgewise.components.inference.window import FeatureRow, SourceWindows, decode_payload, stack
from edgewise.errors import EdgewiseError
from edgewise.ml.jsonpath import JsonPath, parse_path
from edgewise.protocol.capture import capture_record
from edgewise.protocol.model_package import PackageError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

logger = logging.getLogger(__name__)

#: How long a model's package may take to appear under the artifacts directory after the configuration names it.
PACKAGE_WAIT_S = 30.0
#: How long the runtime may take to accept a subscription to a model's input topic.
SUBSCRIBE_TIMEOUT_S = 30.0
#: Problems with messages logged one by one per model; after that only the counters tell.
LOGGED_PROBLEMS = 5

Publish = Callable[[ServedModelConfig, dict[str, object]], None]
Notify = Callable[[str, dict[str, object]], None]  #: publish a message on a local topic
Loader = Callable[[Path, "list[Ed25519PublicKey]"], LoadedModel]


@dataclass
class Counters:
    """What happened to one model's messages since the component started."""

    messages: int = 0
    results: int = 0
    skipped: int = 0
    malformed: int = 0
    failed: int = 0
    captured: int = 0  #: capture records appended to the stream
    capture_dropped: int = 0  #: records dropped because the capture queue was full
    capture_failed: int = 0  #: records the stream manager did not take (absent, failing)
    challenger_agreements: int = 0
    challenger_disagreements: int = 0
    challenger_dropped: int = 0  #: rows not shadowed because the challenger's queue was full
    challenger_timeouts: int = 0
    challenger_failed: int = 0
    challenger_runs: int = 0
    challenger_seconds: float = 0.0
    challenger_max_seconds: float = 0.0
    drift_events: int = 0

    def text(self, config: ServedModelConfig | None = None) -> str:
        """The counters as ``key=value`` pairs; those of capture, challenger and drift detector only when
        ``config`` has them."""
        parts = [
            f"messages={self.messages} results={self.results} skipped={self.skipped} "
            f"malformed={self.malformed} failed={self.failed}"
        ]
        if config is not None and config.capture is not None:
            parts.append(
                f"captured={self.captured} captureDropped={self.capture_dropped} "
                f"captureFailed={self.capture_failed}"
            )
        if config is not None and config.challenger is not None:
            mean = self.challenger_seconds / self.challenger_runs if self.challenger_runs else 0.0
            parts.append(
                f"challengerAgreements={self.challenger_agreements} "
                f"challengerDisagreements={self.challenger_disagreements} "
                f"challengerDropped={self.challenger_dropped} challengerTimeouts={self.challenger_timeouts} "
                f"challengerFailed={self.challenger_failed} challengerLatencyMs={mean * 1000:.2f} "
                f"challengerMaxLatencyMs={self.challenger_max_seconds * 1000:.2f}"
            )
        if config is not None and config.drift_detector is not None:
            parts.append(f"driftEvents={self.drift_events}")
        return " ".join(parts)


@dataclass(frozen=True)
class _Active:
    """What a model's messages are handled with; replaced as a whole, so one read sees one version."""

    model: LoadedModel
    windows: SourceWindows
    passthrough: tuple[JsonPath, ...]
    challenger: Challenger | None = None
    detector: ScoreDriftDetector | None = None


@dataclass
class ServedModel:
    """One entry of ``models`` being served."""

    config: ServedModelConfig
    active: _Active
    previous: LoadedModel | None = None
    counters: Counters = field(default_factory=Counters)
    logged: str = ""  #: the counters text last logged (nothing to log before a message)

    def __post_init__(self) -> None:
        self.logged = self.logged or Counters().text(self.config)


class InferenceServer:
    """The served models and what a message does to them; knows nothing of IPC."""

    def __init__(
        self,
        root: Path,
        *,
        publish: Publish,
        thing: str | None = None,
        clock: Callable[[], float] = time.time,
        notify: Notify | None = None,
        capture: CaptureWriter | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.root = root
        self.thing = thing
        self._publish = publish
        self._notify = notify
        self._clock = clock
        self._served: dict[str, ServedModel] = {}
        self._lock = threading.Lock()  # guards changes to _served, not reads on the message path
        self.capture = capture if capture is not None else CaptureWriter()
        self.shadow = ShadowRunner(self._shadowed)
        # Sampling needs no reproducibility across processes: seeded once per process.
        self._rng = rng if rng is not None else random.Random()

    @property
    def served(self) -> Mapping[str, ServedModel]:
        return self._served

    def handle(self, name: str, topic: str, payload: bytes | object) -> int:
        """Run model ``name`` on one message from ``topic``; the number of results published."""
        served = self._served.get(name)
        if served is None:
            return 0
        active = served.active
        counters = served.counters
        counters.messages += 1
        try:
            rows = active.windows.add(topic, decode_payload(payload), int(self._clock() * 1000))
        except PayloadError as error:
            if error.malformed:
                counters.malformed += 1
            else:
                counters.skipped += 1
            if counters.skipped + counters.malformed <= LOGGED_PROBLEMS:
                logger.warning("model %s: message on %s skipped: %s", name, topic, error)
            return 0
        if not rows:
            return 0
        try:
            fields = active.model.predict(stack(rows))
        except Exception:
            # A model that fails on some input must not take the component down; the counters show it.
            counters.failed += 1
            if counters.failed <= LOGGED_PROBLEMS:
                logger.exception("model %s: inference failed on a message from %s", name, topic)
            return 0
        manifest = active.model.manifest
        for row, result_fields in zip(rows, fields, strict=True):
            result: dict[str, object] = {"model": name, "version": manifest.version}
            if self.thing:
                result["thing"] = self.thing
            result["topic"] = row.source
            result["timestamp"] = row.timestamp_ms
            result.update(result_fields)
            if active.passthrough:
                result["passthrough"] = {path.text: path.extract(row.document) for path in active.passthrough}
            self._publish(served.config, result)
            counters.results += 1
            self._follow(served, active, row, result_fields)
        return len(rows)

    def _follow(
        self, served: ServedModel, active: _Active, row: FeatureRow, output: dict[str, object]
    ) -> None:
        """After a result: the drift detector, the challenger's shadow run, the capture decision."""
        config = served.config
        manifest = active.model.manifest
        score = score_of(manifest.outputs.kind, output)
        if active.detector is not None and score is not None and active.detector.update(score):
            served.counters.drift_events += 1
            detector = active.detector.config
            event = drift_event(
                model=config.name,
                version=manifest.version,
                detector=detector.kind,
                at=row.timestamp_ms,
                value=score,
            )
            logger.warning(
                "model %s: %s detected drift in the score stream at %s", config.name, detector.kind, score
            )
            if self._notify is not None:
                self._notify(detector.topic, event)
        challenger = active.challenger
        if challenger is not None and self._rng.random() < challenger.config.sample_rate:
            run = ShadowRun(
                challenger, row, output, served.counters, time.monotonic(), config.name, active.model
            )
            if self.shadow.offer(run):
                return  # captured, if at all, once the challenger has answered
        if config.capture is not None:
            reason = capture_reason(config.capture, score=score, disagreed=None, draw=self._rng.random())
            if reason is not None:
                self._capture(config, active.model, row, output, None, reason, served.counters)

    def _shadowed(self, outcome: ShadowOutcome) -> None:
        run = outcome.run
        served = self._served.get(run.model)
        capture = served.config.capture if served is not None else None
        if served is None or capture is None:
            return
        score = score_of(run.champion.manifest.outputs.kind, run.output)
        reason = capture_reason(capture, score=score, disagreed=not outcome.agrees, draw=self._rng.random())
        if reason is not None:
            self._capture(
                served.config, run.champion, run.row, run.output, outcome.record(), reason, run.counters
            )

    def _capture(
        self,
        config: ServedModelConfig,
        model: LoadedModel,
        row: FeatureRow,
        output: Mapping[str, object],
        challenger: dict[str, object] | None,
        reason: str,
        counters: Counters,
    ) -> None:
        assert config.capture is not None
        record = capture_record(
            model=config.name,
            version=model.manifest.version,
            source=row.source,
            timestamp_ms=row.timestamp_ms,
            feature_names=model.manifest.feature_names,
            values=row.values.tolist(),
            output=output,
            challenger=challenger,
            reason=reason,
        )
        self.capture.offer(config.capture.stream, record, counters)

    def close(self) -> None:
        """Finish the queued shadow runs and capture records (a few seconds at most)."""
        self.shadow.close()
        self.capture.close()

    def needs_load(self, config: ServedModelConfig) -> bool:
        """True when serving ``config`` takes a model that is not loaded (current or previous)."""
        served = self._served.get(config.name)
        if served is None:
            return True
        return not any(
            model is not None and _same_package(model, config, self.root)
            for model in (served.active.model, served.previous)
        )

    def load(
        self, config: ServedModelConfig, keys: list[Ed25519PublicKey], loader: Loader = load_model
    ) -> LoadedModel:
        """Verify, load and smoke-test the package ``config`` names (the slow part, off the message path)."""
        return loader(config.package_dir(self.root), keys)

    def install(
        self,
        config: ServedModelConfig,
        model: LoadedModel | None = None,
        challenger: Challenger | None = None,
    ) -> ServedModel:
        """Serve ``config`` with ``model`` (or the loaded current or previous one for it) and ``challenger``: swap
        the reference.

        A model's windows carry over when the new version reads its inputs the same way; its drift detector when
        the model and the detector's settings are the same.
        """
        detector_config = config.drift_detector
        with self._lock:
            served = self._served.get(config.name)
            if model is None:
                model = self.loaded(config)
                assert model is not None, "install without a model needs a loaded one"
            passthrough = tuple(parse_path(text, field="passthrough") for text in config.passthrough)
            old = served.active if served is not None else None
            detector = None
            if detector_config is not None:
                kept = old.detector if old is not None and old.model is model else None
                detector = kept if kept is not None and kept.config == detector_config else None
                detector = detector or ScoreDriftDetector(detector_config)
            if served is None or old is None:
                active = _Active(model, SourceWindows(model.layout), passthrough, challenger, detector)
                served = ServedModel(config, active)
                self._served[config.name] = served
                return served
            windows = old.windows if old.model.layout == model.layout else SourceWindows(model.layout)
            served.config = config
            served.active = _Active(model, windows, passthrough, challenger, detector)
            if old.model is not model:
                served.previous = old.model
            return served

    def loaded(self, config: ServedModelConfig) -> LoadedModel | None:
        """The loaded model (current or previous) of the package ``config`` names, if any."""
        served = self._served.get(config.name)
        if served is None:
            return None
        candidates = [served.active.model, served.previous]
        return next((m for m in candidates if m is not None and _same_package(m, config, self.root)), None)

    def load_challenger(
        self,
        config: ServedModelConfig,
        champion: LoadedModel,
        keys: list[Ed25519PublicKey],
        loader: Loader | None = load_model,
    ) -> Challenger | None:
        """The challenger ``config`` names for ``champion``, the loaded one when it is the same package, else
        loaded with ``loader`` (None: only a loaded one); None when there is none or it cannot serve (logged:
        the champion serves on without it)."""
        wanted = config.challenger
        if wanted is None:
            return None
        directory = wanted.package_dir(self.root)
        served = self._served.get(config.name)
        current = served.active.challenger if served is not None else None
        try:
            if current is not None and current.model.package_dir == directory:
                model = current.model
            elif loader is not None:
                model = loader(directory, keys)
            else:
                return None
            return challenger_for(champion, model, wanted)
        except (PackageError, ModelLoadError, OSError) as error:
            logger.error(
                "model %s: challenger package %s refused: %s; the champion serves without a challenger",
                config.name,
                directory,
                error,
            )
            return None

    def remove(self, name: str) -> None:
        with self._lock:
            self._served.pop(name, None)

    def counter_lines(self, *, changed_only: bool = True) -> list[str]:
        """A line per model whose counters changed since the last call (every model when not ``changed_only``)."""
        lines = []
        for name, served in list(self._served.items()):
            text = served.counters.text(served.config)
            if changed_only and text == served.logged:
                continue
            served.logged = text
            lines.append(f"counters model={name} version={served.active.model.manifest.version} {text}")
        return lines


def _same_package(model: LoadedModel, config: ServedModelConfig, root: Path) -> bool:
    return model.package_dir == config.package_dir(root)


class InferenceComponent:
    """The inference server on the awsiotsdk V2 client (``client``: a ``GreengrassCoreIPCClientV2``)."""

    def __init__(
        self, client: Any, root: Path, *, thing: str | None = None, loader: Loader = load_model
    ) -> None:
        self._client = client
        self._loader = loader
        self.server = InferenceServer(root, publish=self._publish, thing=thing, notify=self._notify)
        self._subscriptions: dict[str, tuple[str, Any]] = {}  # model name -> (input topic, stream operation)
        self._requests: queue.Queue[bool] = queue.Queue()
        self._stop = threading.Event()
        self._interval = 60.0
        self._threads: list[threading.Thread] = []
        self._publish_errors = 0

    def start(self) -> None:
        """Subscribe to configuration updates, start the background threads; the reload thread then applies the
        current configuration."""
        self._client.subscribe_to_configuration_update(
            key_path=[], on_stream_event=self._on_configuration_update, on_stream_error=self._on_stream_error
        )
        # The first configuration is applied on the reload thread too: a package still being written must not
        # keep the component from answering.
        self._requests.put(True)
        for target, name in (
            (self._reload_loop, "inference-reload"),
            (self._counters_loop, "inference-counters"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        self._stop.set()
        self._requests.put(False)
        for thread in self._threads:
            thread.join(timeout=5)
        self.server.close()
        for line in self.server.counter_lines(changed_only=False):
            logger.info("%s", line)
        for _, operation in self._subscriptions.values():
            with contextlib.suppress(Exception):
                operation.close()

    # -- configuration -----------------------------------------------------------------------------------

    def _on_configuration_update(self, event: Any) -> None:
        self._requests.put(True)

    def _reload_loop(self) -> None:
        while not self._stop.is_set():
            if not self._requests.get():
                return
            # Several updates in a row make one reload of the configuration as it is now.
            with contextlib.suppress(queue.Empty):
                while True:
                    if not self._requests.get_nowait():
                        return
            try:
                self._apply_current()
            except Exception:
                logger.exception("configuration update not applied")

    def _apply_current(self) -> None:
        response = self._client.get_configuration(key_path=[])
        try:
            config = parse_config(response.value or {})
            keys = config.public_keys()
        except (InferenceConfigError, PackageError) as error:
            logger.error("configuration refused, still serving the previous one: %s", error)
            return
        self._interval = config.counters_interval_s
        self._apply(config, keys)

    def _apply(self, config: InferenceConfig, keys: list[Ed25519PublicKey]) -> None:
        for name in [name for name in self.server.served if name not in config.models]:
            self._unsubscribe(name)
            self.server.remove(name)
            logger.info("model %s: no longer served", name)
        for name, model_config in config.models.items():
            try:
                self._serve(model_config, keys)
            except (PackageError, ModelLoadError, OSError) as error:
                served = self.server.served.get(name)
                still = f"; still serving version {served.active.model.manifest.version}" if served else ""
                logger.error(
                    "model %s: package %s refused: %s%s",
                    name,
                    model_config.package_dir(self.server.root),
                    error,
                    still,
                )
            except EdgewiseError as error:
                logger.error("model %s: not served: %s", name, error)

    def _serve(self, config: ServedModelConfig, keys: list[Ed25519PublicKey]) -> None:
        model = None
        if self.server.needs_load(config):
            self._wait_for_package(config.package_dir(self.server.root))
            model = self.server.load(config, keys, self._loader)
        champion = model or self.server.loaded(config)
        assert champion is not None, "a model to serve is loaded"
        # A challenger still to load must not hold the model up: it joins once loaded.
        challenger = self.server.load_challenger(config, champion, keys, loader=None)
        served = self.server.install(config, model, challenger)
        manifest = served.active.model.manifest
        logger.info(
            "model %s: serving %s version %s (package %s@%s) on %s -> %s%s",
            config.name,
            manifest.name,
            manifest.version,
            config.component,
            config.version,
            config.input_topic,
            config.output_topic,
            f" and IoT Core {config.iot_core_topic}" if config.iot_core_topic else "",
        )
        self._subscribe(config)
        if config.challenger is not None and challenger is None:
            self._wait_for_package(config.challenger.package_dir(self.server.root))
            challenger = self.server.load_challenger(config, champion, keys, self._loader)
            if challenger is not None:
                self.server.install(config, None, challenger)
        if challenger is not None:
            logger.info(
                "model %s: challenger %s version %s (package %s@%s) in shadow on %g of the rows",
                config.name,
                challenger.model.manifest.name,
                challenger.version,
                challenger.config.component,
                challenger.config.version,
                challenger.config.sample_rate,
            )

    def _wait_for_package(self, directory: Path) -> None:
        deadline = time.monotonic() + PACKAGE_WAIT_S
        while not directory.is_dir() and time.monotonic() < deadline:
            if self._stop.wait(0.2):
                return

    # -- messages ----------------------------------------------------------------------------------------

    def _subscribe(self, config: ServedModelConfig) -> None:
        current = self._subscriptions.get(config.name)
        if current is not None and current[0] == config.input_topic:
            return
        from awsiot.greengrasscoreipc.client import SubscribeToTopicStreamHandler
        from awsiot.greengrasscoreipc.model import SubscribeToTopicRequest

        name = config.name
        component = self

        class Messages(SubscribeToTopicStreamHandler):  # type: ignore[misc]
            def on_stream_event(self, event: Any) -> None:
                component._on_message(name, event)

            def on_stream_error(self, error: Exception) -> bool:
                return component._on_stream_error(error)

        # Through the V1 client under the V2 one, so that each message is handled on the connection's thread as
        # it arrives: the V2 client would hand it to its executor thread, a thread wake-up and a GIL handover
        # per message. Nothing on the message path waits for IPC (results are published without waiting), so
        # the connection's thread is never blocked on itself.
        operation = self._client.client.new_subscribe_to_topic(Messages())
        operation.activate(SubscribeToTopicRequest(topic=config.input_topic)).result(SUBSCRIBE_TIMEOUT_S)
        operation.get_response().result(SUBSCRIBE_TIMEOUT_S)
        self._subscriptions[name] = (config.input_topic, operation)
        # The new subscription is in place before the old one closes, so no message falls between them.
        if current is not None:
            with contextlib.suppress(Exception):
                current[1].close()

    def _unsubscribe(self, name: str) -> None:
        current = self._subscriptions.pop(name, None)
        if current is not None:
            with contextlib.suppress(Exception):
                current[1].close()

    def _on_message(self, name: str, event: Any) -> None:
        try:
            if event.json_message is not None:
                self.server.handle(name, event.json_message.context.topic, event.json_message.message)
            elif event.binary_message is not None:
                self.server.handle(
                    name, event.binary_message.context.topic, bytes(event.binary_message.message)
                )
        except Exception:
            logger.exception("model %s: message not handled", name)

    def _on_stream_error(self, error: Exception) -> bool:
        logger.error("IPC stream error: %r", error)
        return False  # keep the stream open

    def _publish(self, config: ServedModelConfig, result: dict[str, object]) -> None:
        from awsiot.greengrasscoreipc.model import QOS, JsonMessage, PublishMessage

        future = self._client.publish_to_topic_async(
            topic=config.output_topic,
            publish_message=PublishMessage(json_message=JsonMessage(message=result)),
        )
        future.add_done_callback(self._published)
        if config.iot_core_topic:
            future = self._client.publish_to_iot_core_async(
                topic_name=config.iot_core_topic, qos=QOS.AT_LEAST_ONCE, payload=json.dumps(result).encode()
            )
            future.add_done_callback(self._published)

    def _notify(self, topic: str, message: dict[str, object]) -> None:
        from awsiot.greengrasscoreipc.model import JsonMessage, PublishMessage

        future = self._client.publish_to_topic_async(
            topic=topic, publish_message=PublishMessage(json_message=JsonMessage(message=message))
        )
        future.add_done_callback(self._published)

    def _published(self, future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            self._publish_errors += 1
            if self._publish_errors <= LOGGED_PROBLEMS:
                logger.error("a result was not published: %r", error)

    def _counters_loop(self) -> None:
        logged_at = time.monotonic()
        # Short waits, so that a new countersIntervalSeconds applies without waiting out the old one.
        while not self._stop.wait(min(self._interval, 1.0)):
            if time.monotonic() - logged_at >= self._interval:
                logged_at = time.monotonic()
                for line in self.server.counter_lines():
                    logger.info("%s", line)
