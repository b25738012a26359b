# tern - top-level entry points. The real build is Meson + ninja.
#   make demo   install missing packages, build, run the live demo
#   make test   install missing packages, build, run every test suite
#               (plain, ASan+UBSan unit tests, libFuzzer smoke runs)
BUILD ?= build

.PHONY: all deps build test demo clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: deps
	@sh scripts/run-tests.sh

demo: build
	@sh scripts/demo.sh $(BUILD)

clean:
	rm -rf build build-asan build-fuzz
