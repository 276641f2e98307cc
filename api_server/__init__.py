"""The bundled trading-data API: a stand-in for the exchange's public API, with fault injection."""
