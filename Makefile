# kojinbango — `make demo` and `make test` bootstrap everything from python3 and make.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# Debian packages the PDFs need (embedded Japanese fonts: IPAmj明朝 covers 𠮷, 髙, 﨑 …);
# chromium for the portal's browser test, openssl for the JPKI certificate test.
DEB_PACKAGES := fonts-ipamj-mincho fonts-ipaexfont-mincho fonts-ipaexfont-gothic poppler-utils chromium openssl zbar-tools
FONT := /usr/share/fonts/truetype/ipamj/ipamjm.ttf
PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo test lint typecheck system-deps venv bench bench-exchange clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@if [ ! -f $(FONT) ] || ! command -v pdftoppm >/dev/null || ! command -v chromium >/dev/null || ! command -v openssl >/dev/null || ! command -v zbarimg >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $(DEB_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	  else \
	    echo "please install the Debian packages: $(DEB_PACKAGES) (sudo apt-get install ...)"; exit 1; \
	  fi; \
	fi

demo: $(STAMP) system-deps
	$(BIN)/kojinbango demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# The PostgreSQL tests run when a server answers at $(PG_URL) (or KOJINBANGO_TEST_PG_URL);
# otherwise they are skipped and the summary says so.  CI sets KOJINBANGO_REQUIRE_PG=1.
# The slowest tests are listed at the end, to keep CI's run short.
test: $(STAMP) system-deps lint typecheck
	KOJINBANGO_TEST_PG_URL=$${KOJINBANGO_TEST_PG_URL:-$(PG_URL)} $(BIN)/pytest -q --durations=15

bench: $(STAMP)
	$(BIN)/kojinbango bench numbering --count 10000000 --pg-url $(PG_URL)

bench-exchange: $(STAMP)
	$(BIN)/kojinbango bench exchange --queries 2000 --concurrency 16

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
