# The two commands of the README. Each sets up what it needs first (Debian packages, .venv).
.PHONY: demo test lint bench vectors prompts clean install uninstall system-test pi-smoke

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

# The appliance (issue 12; systemd/README.md). `sudo make install` on the Pi: non-interactive,
# idempotent, re-run to upgrade. `make uninstall` keeps recordings; `make uninstall PURGE=1`
# removes them too.
install:
	systemd/install.sh $(INSTALL_ARGS)

uninstall:
	systemd/install.sh --uninstall $(if $(PURGE),--purge)

# Boots a Debian bookworm container (systemd as PID 1), installs with the real installer and
# checks the appliance end to end (tests/system/run.py). Root; ~3 min, first run +5 min.
system-test:
	@scripts/bootstrap.sh --test
	.venv/bin/python tests/system/run.py

# arm64 under qemu-user: installer, test vectors, a simulated ceremony (tests/system/pi_smoke.py).
# Not part of make test: ~8 min, 22 min the first time (systemd/README.md).
pi-smoke:
	@scripts/bootstrap.sh --test
	.venv/bin/python tests/system/pi_smoke.py
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
