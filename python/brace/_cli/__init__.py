"""brace's command line: `brace demo` (a chaos run against a simulated API) and `brace tour`.

The programs layer: it uses the public API and nothing imports it.
"""
