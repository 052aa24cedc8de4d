# The two commands of the README. Each sets up what it needs first (Debian packages, .venv).
.PHONY: demo test lint bench vectors prompts clean

demo:
	@scripts/bootstrap.sh
	@.venv/bin/python scripts/demo.py

test:
	@scripts/bootstrap.sh --test
	.venv/bin/ruff check device tests scripts
	.venv/bin/python -m pytest -q

lint:
	@scripts/bootstrap.sh --test
	.venv/bin/ruff check device tests scripts
	.venv/bin/ruff format --check device tests scripts || true

bench:
	@scripts/bootstrap.sh
	@scripts/bench_peer.sh
	.venv/bin/akkoord bench

vectors:
	@scripts/bootstrap.sh
	.venv/bin/python scripts/make_vectors.py

prompts:
	scripts/make_prompts.sh

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis demo-out
