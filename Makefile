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
	.venv/bin/akkoord bench

vectors:
	@scripts/bootstrap.sh
	.venv/bin/python scripts/make_vectors.py

prompts:
	scripts/make_prompts.sh

clean:
	rm -rf .venv .pytest_cache .ruff_cache .hypothesis demo-out

# Mutation testing of the guarantee-carrying modules (slow: not part of `make test`; see
# docs/TESTING.md). One target: `make mutation TARGETS=consent`.
.PHONY: mutation
mutation:
	@scripts/bootstrap.sh --test
	.venv/bin/python -m pip install -q --disable-pip-version-check "mutmut>=3.8,<4"
	.venv/bin/python scripts/mutation.py $(TARGETS)

# Each guarantee's guard switched off (in a scratch copy) must fail its test: docs/TESTING.md.
.PHONY: guards
guards:
	@scripts/bootstrap.sh --test
	.venv/bin/python scripts/check_guards.py
