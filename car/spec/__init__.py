"""The dataflow file: its model (`model`), the loader and its checks (`loader`), and drawings of it (`graph`)."""
