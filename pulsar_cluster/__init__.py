"""PulsarDB shared library: data model, protocols, codecs, client and the `pulsar` CLI."""

__version__ = "0.1.0"
