"""The command line's modes and benchmarks: leaves that only the cli (and entry points) import."""
