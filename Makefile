# ocirun - developer entry points (GNU make).
#
#   make demo      install deps, build, make the busybox bundle, run it
#   make test      install deps, build, make the bundle, run pytest
#   make install   the wheel into /usr/local/lib/ocirun, linked from /usr/local/bin/ocirun
#   make           (no target) prints this list
#
# demo, test and deps need root on Debian 12 (apt-get, namespaces, mounts).

SHELL := /bin/bash
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

# The venv must come from the system's real interpreter, never a pyenv/asdf
# shim (a shim adds ~85 ms to every ocirun call).
PYTHON ?= /usr/bin/python3
VENV   := .venv
VENV_ABS := $(abspath $(VENV))
STAMP  := $(VENV)/.stamp
PYC_STAMP := $(VENV)/.pyc-stamp
BUNDLE := bundles/busybox
ROOTFS_STAMP := $(BUNDLE)/rootfs/bin/busybox
BINDIR ?= /usr/local/bin
LIBDIR ?= /usr/local/lib/ocirun
PYTEST_ARGS ?=

# Everything whose change means the package (and its C shim) must be rebuilt.
BUILD_INPUTS := setup.py pyproject.toml proto/criu-rpc.proto \
	$(shell find csrc -type f ! -path '*/__pycache__/*' ! -name '*.o' ! -name '*.so' 2>/dev/null)

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1

# An existing venv made from another interpreter (e.g. a pyenv one) is rebuilt.
ifneq ($(wildcard $(VENV)/pyvenv.cfg),)
VENV_EXE := $(shell sed -n 's/^executable = //p' $(VENV)/pyvenv.cfg)
WANT_EXE := $(shell readlink -f "$$(command -v $(PYTHON))" 2>/dev/null)
ifneq ($(VENV_EXE),$(WANT_EXE))
$(info note: $(VENV) was built from '$(VENV_EXE)', not '$(WANT_EXE)' (PYTHON=$(PYTHON)); rebuilding it)
VENV_FORCE := force-venv
endif
endif

.PHONY: help deps venv build bundle demo test install uninstall clean force-venv

help:
	@echo "ocirun make targets (default: help):"
	@echo "  make demo       deps + build + bundle, then run the busybox bundle with ocirun"
	@echo "  make test       deps + build + bundle, then pytest (PYTEST_ARGS='-k foo' to filter;"
	@echo "                 OCIRUN_FAULTS=full: the fault suite tests/faults at full size)"
	@echo "  make bench      deps + build + bundle, then ocirun vs runc vs crun (BENCH_ARGS='--runs 5 --only run')"
	@echo "  make conformance  OCI runtime-tools validation suite, ocirun vs runc (CONFORMANCE_ARGS='--only hooks -v')"
	@echo "  make deps       install the missing Debian packages (scripts/deps.sh, root)"
	@echo "  make build      create $(VENV) from PYTHON=$(PYTHON) and pip install -e '.[test]'"
	@echo "  make bundle     build $(BUNDLE)/rootfs from the host's static busybox"
	@echo "  make criu       build CRIU 4.2 from ../shared/criu into build/criu (checkpoint/restore tests)"
	@echo "  make install    the wheel into a venv $(LIBDIR), linked from $(BINDIR)/ocirun"
	@echo "  make uninstall  remove both"
	@echo "  make lint       ruff (lint + format), mypy, gcc -Wall -Wextra -Werror and clang-format on csrc/"
	@echo "  make test-installed  the wheel outside the checkout: demo (checkout hidden) + lifecycle tests"
	@echo "  make clean      remove $(VENV), build output and bundle rootfs directories"

deps:
	@bash scripts/deps.sh

# --- virtualenv + package (compiles the C shim through cffi) ----------------

venv: $(VENV)/pyvenv.cfg

$(VENV)/pyvenv.cfg: $(VENV_FORCE) | deps
	@p=$$(command -v $(PYTHON)) || { echo "error: PYTHON=$(PYTHON) not found" >&2; exit 1; }; \
	if [ "$$(head -c2 "$$p")" = '#!' ]; then \
		echo "error: PYTHON=$(PYTHON) ($$p) is a script (pyenv/asdf shim?)," \
		     "not an interpreter; use PYTHON=/usr/bin/python3" >&2; exit 1; fi
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)

build: $(STAMP) $(PYC_STAMP)

# Byte-compile ahead: a PYTHONDONTWRITEBYTECODE environment (engines pass theirs on) would
# otherwise recompile every module on every call of the runtime (~40 ms).
$(PYC_STAMP): $(STAMP) $(wildcard ocirun/*.py ocirun/*/*.py)
	$(VENV)/bin/python -m compileall -q ocirun $(VENV)/lib >/dev/null
	@touch $@

$(STAMP): $(VENV)/pyvenv.cfg $(BUILD_INPUTS) | deps
	$(VENV)/bin/pip install -q --config-settings editable_mode=compat -e '.[test,lint]'
	$(VENV)/bin/python scripts/mklauncher.py $(VENV)/bin
	@test -x $(VENV)/bin/ocirun || { echo "error: $(VENV)/bin/ocirun was not installed" >&2; exit 1; }
	@case "$$(head -c4 $(VENV)/bin/ocirun | od -An -c | tr -d ' ')" in \
		'177ELF') ;; \
		*) echo "error: $(VENV)/bin/ocirun is not the compiled front door (scripts/mklauncher.py)" >&2; exit 1;; \
	esac
	@touch $@

# --- demo bundle -------------------------------------------------------------

bundle: $(ROOTFS_STAMP)

$(ROOTFS_STAMP): scripts/mkbundle.sh | deps
	FORCE=1 bash scripts/mkbundle.sh $(BUNDLE)

# --- user-facing ---------------------------------------------------------------

# $$$$ is the shell's PID: a fresh container id per run, so an id left behind
# by an interrupted demo never collides.
demo: build bundle
	PATH="$(VENV_ABS)/bin:$$PATH" $(VENV)/bin/ocirun run --bundle $(BUNDLE) demo-$$$$

# CRIU 4.2 for checkpoint/restore (tests/integration/test_checkpoint.py), built offline from
# ../shared/criu/criu-*.tar.gz into build/criu/ (~40 s once; reused while the tarball is
# unchanged). No tarball or a missing build dependency: "criu: skipped: <reason>" and the
# tests skip saying so; a failed build fails.
.PHONY: criu
criu: | deps
	@rc=0; bash scripts/criu-build.sh >/dev/null || rc=$$?; \
	if [ $$rc -eq 2 ]; then bash scripts/criu-build.sh | sed 's/^/criu: /'; exit 0; fi; \
	exit $$rc

# pytest's exit code is passed through: 5 (no tests collected) fails too.
test: build bundle criu
	@rc=0; PATH="$(VENV_ABS)/bin:$$PATH" $(VENV)/bin/python -m pytest -q tests $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: FAILED, pytest collected no tests (exit 5)" >&2; fi; \
	exit $$rc
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory test-installed
	@$(MAKE) --no-print-directory conformance
	@$(MAKE) --no-print-directory test-vm

# The OCI runtime-tools validation suite (58 programs), ocirun side by side with runc
# (docs/conformance.md): built offline from ../shared/conformance/runtime-tools-*.tar.gz into
# build/conformance/ (reused while the tarball is unchanged), ~3-5 min. Fails on a program
# runc passes and ocirun fails unless tests/conformance/known_failures.txt lists it, and on
# a listed program that now passes. Prints "conformance: skipped: <reason>" without the
# tarball or Go. CONFORMANCE_ARGS='--only hooks,linux_devices -v' to run a few.
CONFORMANCE_ARGS ?=
.PHONY: conformance
conformance: build
	@$(VENV)/bin/python scripts/conformance.py $(CONFORMANCE_ARGS)

# tests/vm inside a throwaway cgroup-v2-only QEMU VM (scripts/vm/; ~5 min under TCG, no KVM
# needed): the host's .venv and bundle, nothing built in the VM. Prints
# "test-vm: skipped: <reason>" and succeeds where no VM can run (OCIRUN_TEST_VM=0 skips too).
.PHONY: test-vm
test-vm: build bundle
	@bash scripts/vm/test-vm.sh

# Side-by-side benchmark against runc/crun (root); bench/README.md lists the rows.
BENCH_ARGS ?=
.PHONY: bench
bench: build bundle
	$(VENV)/bin/python bench/bench.py $(BENCH_ARGS)

# A system install that needs no checkout: the wheel in a dedicated venv (LIBDIR), linked
# from BINDIR (scripts/install.sh). `make uninstall` removes both.
install: build
	@bash scripts/install.sh install $(LIBDIR) $(BINDIR)

uninstall:
	@bash scripts/install.sh uninstall $(LIBDIR) $(BINDIR)

# The style and type gate (scripts/lint.sh): ruff, mypy, gcc -Werror, clang-format.
.PHONY: lint
lint: build
	@bash scripts/lint.sh

# The wheel installed into a fresh venv outside the checkout: the demo with the checkout
# hidden, then the lifecycle tests against that command (scripts/test-installed.sh, ~25 s).
.PHONY: test-installed
test-installed: build bundle
	@bash scripts/test-installed.sh

# --one-file-system: never descend into something still mounted in a rootfs.
clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache ocirun/_shim.c
	find ocirun csrc tests -depth \( -name '*.so' -o -name '*.o' -o -name __pycache__ \) \
		-exec rm -rf {} + 2>/dev/null || true
	rm -rf --one-file-system bundles/*/rootfs bundles/*/.rootfs.*
