"""The Rust-vs-Python consumer benchmark harness (see bench/README.md)."""
