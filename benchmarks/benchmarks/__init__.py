"""asv benchmarks of brace (asv imports this folder as a package)."""
