# Two commands for a newcomer: `make run` and `make test`. Both build .venv from nothing when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED_WEIGHTS := ../shared/weights/vgg19_features_fp16.pth
SHARED_IMAGES := ../shared/images

.PHONY: install run doctor test lint typecheck demo bench gallery gallery-sheet gpu-check soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch and torchvision first and pinned, so pip takes the builds on this machine's disk.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1 || $(BIN)/pip install -q "torch>=2.2,<2.15" "torchvision>=0.17,<0.30"
	$(BIN)/pip install -q -e ".[engine,test]"
	touch $(STAMP)

install: $(STAMP)

# Settings come from .env and the environment; without DISCORD_TOKEN the bot says how to set it.
run: $(STAMP)
	$(BIN)/python -m bot

# One line per check (settings, token, weights + a forward pass, database, Discord), exit 1 on any failure.
doctor: $(STAMP)
	$(BIN)/python -m bot doctor

lint: $(STAMP)
	$(BIN)/ruff check nst_engine bot tests benchmarks

# Types: mypy over nst_engine and bot ([tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy

# Lint first (a second), then the type check beside the tests: pytest mostly waits, so mypy costs no wall time.
# Three pytest workers on two cores: most of the suite waits (bots, fake Discord, worker pools, Ray), little computes.
# --dist loadgroup keeps each xdist_group on one worker (tests/conftest.py: all Ray tests share one local Ray).
# The 15 slowest tests are listed at the end, so growth shows.
TEST_WORKERS ?= 3

test: lint
	@log=$$(mktemp); $(BIN)/mypy >$$log 2>&1 & mypy=$$!; \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup --durations=15; tests=$$?; \
	wait $$mypy; types=$$?; echo "mypy: $$(tail -n 1 $$log)"; test $$types -eq 0 || cat $$log; rm -f $$log; \
	test $$tests -eq 0 -a $$types -eq 0

demo: $(STAMP)
	mkdir -p out
	$(BIN)/nst $(SHARED_IMAGES)/content/chelsea.png $(SHARED_IMAGES)/style/starry_night.jpg \
		-o out/demo.png --preset fast --loss-plot out/demo-losses.png \
		$$(test -f $(SHARED_WEIGHTS) && echo --weights $(SHARED_WEIGHTS))

bench: $(STAMP)
	$(BIN)/python -m benchmarks.engine_vs_tutorial --gallery out/bench/gallery.jpg
	$(BIN)/python -m benchmarks.pool_overhead
	$(BIN)/python -m benchmarks.ray_overhead
	$(BIN)/python -m benchmarks.animation --out out/bench/animation.webp

# The picture of /style-gallery list in docs/usage.md: the built-in paintings and a sample server gallery.
gallery-sheet: $(STAMP)
	$(BIN)/python -m bot.gallery.sheet docs/images/gallery-sheet.jpg --server "Art Club" \
		--painting "Our Mascot=$(SHARED_IMAGES)/content/chelsea.png" \
		--painting "Coffee Break=$(SHARED_IMAGES)/content/coffee.png" \
		--painting "Launch Day=$(SHARED_IMAGES)/content/rocket.jpg" \
		--painting "Moonwalk=$(SHARED_IMAGES)/content/astronaut.png"

# Contact sheet (4 photos x 4 paintings, balanced) and strength sheet into docs/images/: look before and after.
gallery: $(STAMP)
	$(BIN)/python -m benchmarks.gallery

# Everything a GPU must prove, in one call (at most ~6 minutes); one line and exit 0 without a GPU.
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_check --output out/gpu-check.txt

# The soak run: 200+ requests with every fault against the real bot and worker pool (a few minutes; docs/reliability.md).
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
