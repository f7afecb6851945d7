"""Every message between a device and the cloud, defined once: topics, typed payloads and their parsers.

Both sides import these modules (the runtime's device agent and cloud link, the cloud's workers and the CLI that
writes device files); neither writes a topic string or a payload key of its own. Each module holds one
conversation: it builds and parses the topics, turns payloads into frozen, typed values and back, and refuses
a bad payload with an error naming the field and the problem. This package imports neither the runtime nor the
cloud (an import-linter contract checks it).

Import the module of the conversation you need, e.g. ``from edgewise.protocol import jobs``.
"""
