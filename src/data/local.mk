# data module: sources and tests (filled in by the data module)
