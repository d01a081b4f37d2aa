"""Speed and memory benchmarks of poolattn, side by side with sentence-transformers (run `python benchmarks/run.py`)."""
