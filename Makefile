# Dropsight: `make run` sets up and runs the service, `make test` sets up and runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WATCH ?= $(HOME)/Pictures/Dropsight
# setuptools tells every editable install "Editable installation. Please be careful with
# folders in your working directory with the same name as your package" (information only:
# package-dir maps ours); pip shows it as a warning. Filtered by its text, nothing else.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip

.PHONY: run test check lint typecheck pytest

$(VENV)/.run-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[models]'
	touch $@

$(VENV)/.dev-deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@ $(VENV)/.run-deps

## run: install into .venv and run the service on $(WATCH) (override: make run WATCH=~/Photos)
run: $(VENV)/.run-deps
	mkdir -p "$(WATCH)"
	$(BIN)/dropsight service --watch "$(WATCH)"

## test: install dev tools into .venv, then lint, type-check and run the whole test suite
test: $(VENV)/.dev-deps lint typecheck pytest

check: test

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# mypy cannot follow the editable install's import hook, so it reads the package through links.
typecheck: $(VENV)/.dev-deps
	mkdir -p build/typing/dropsight
	for p in daemon tray config; do ln -sfn ../../../$$p build/typing/dropsight/$$p; done
	$(BIN)/mypy

pytest: $(VENV)/.dev-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## screenshots: the tray icon, viewer, Find photos and Folders on a 1280x720 Xvfb, light
## and dark, with a stand-in service and library (build/screenshots/*.png; needs Xvfb,
## trayer and ImageMagick's import)
.PHONY: screenshots
screenshots: $(VENV)/.dev-deps
	rm -rf build/screenshots
	for theme in light dark; do \
	  $(BIN)/python -m tests.tray.screens --screen 1280x720 --theme $$theme \
	    --out build/screenshots || exit 1; \
	done
	@ls build/screenshots

# ---- Packaging: frozen bundle, Windows installer, Linux release ------------------------------
# make dist            build/models/*.tflite, then one onedir bundle dist/dropsight/ (PyInstaller)
# make installer       dist/DropsightSetup.exe from a Windows bundle (run on Windows)
# make installer-check compile installer.nsi with makensis -WX anywhere (staged placeholder)
# make linux-release   dist/dropsight-VERSION-linux-ARCH.tar.gz with install.sh/uninstall.sh
# make frozen-test     the bundle in a python-less Debian root (root, debootstrap)
# make time-to-sidecar start the frozen service and time its first sidecar
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' daemon/__init__.py)
ARCH := $(shell uname -m)
MAKENSIS ?= makensis
RELEASE := dropsight-$(VERSION)-linux-$(ARCH)

.PHONY: models dist installer installer-check linux-release frozen-test time-to-sidecar

models: $(VENV)/.dev-deps
	$(BIN)/python packaging/build_models.py

dist: models
	$(BIN)/python -m PyInstaller --noconfirm service.spec
	@du -sh dist/dropsight

installer:
	@test -f dist/dropsight/dropsight.exe || { \
	  echo "make installer: dist/dropsight/dropsight.exe not found: build the bundle on Windows" \
	       "(make dist; PyInstaller does not cross-build). 'make installer-check' compiles" \
	       "installer.nsi here against a placeholder."; exit 1; }
	$(MAKENSIS) -WX -DVERSION=$(VERSION) -DDIST_DIR=dist/dropsight \
	  -DOUTFILE=dist/DropsightSetup.exe installer.nsi
	@ls -l dist/DropsightSetup.exe

installer-check:
	mkdir -p build
	$(MAKENSIS) -WX -DVERSION=$(VERSION) -DDIST_DIR=packaging/windows/check-stage \
	  -DCHECK_BUILD -DOUTFILE=build/DropsightSetup-check.exe installer.nsi

linux-release:
	@test -x dist/dropsight/dropsight || { echo "make linux-release: run 'make dist' first"; exit 1; }
	rm -rf build/$(RELEASE) && mkdir -p build/$(RELEASE)/share
	cp -R dist/dropsight build/$(RELEASE)/dropsight
	cp packaging/linux/install.sh packaging/linux/uninstall.sh build/$(RELEASE)/
	cp packaging/linux/dropsight.desktop packaging/linux/dropsight.service build/$(RELEASE)/share/
	-$(BIN)/python -c "from dropsight.tray.icons import draw_icon; \
	  draw_icon('idle').convert('RGBA').save('build/$(RELEASE)/share/dropsight.png')"
	cp packaging/README.md build/$(RELEASE)/README.md
	tar -C build -czf dist/$(RELEASE).tar.gz $(RELEASE)
	@ls -l dist/$(RELEASE).tar.gz

frozen-test:
	DROPSIGHT_BUILD_FROZEN=$(if $(wildcard dist/dropsight/dropsight),0,1) \
	  $(BIN)/python -m pytest -m frozen -s tests/packaging/test_frozen.py $(PYTEST_ARGS)

time-to-sidecar:
	$(BIN)/python packaging/time_to_sidecar.py --bundle dist/dropsight
