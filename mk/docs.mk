# The README's and docs/' tables, each copied from the report that produced it. Included by the
# Makefile.

.PHONY: readme layout

# Copy every table that has been produced into the file that holds its markers (README.md or a
# page of docs/), each between its markers. An entry is marker:source:destination; a source not
# made yet is skipped, and a destination without the marker is an error.
README_TABLES = timings:reports/$(TIMINGS_MD):README.md \
	converge:reports/de-en/converge/$(SUMMARY_MD):README.md seeds:reports/de-en/converge/$(SEEDS_MD):README.md \
	lesson:reports/de-en/converge/$(LESSON_MD):README.md directions:reports/$(LESSON_DIRECTIONS_MD):README.md \
	archived:reports/$(ARCHIVED_MD):docs/results.md reproduce:reports/$(REPRODUCE_MD):docs/results.md \
	serve-exchange:reports/de-en/best/$(SERVE_EXCHANGE):README.md \
	full-de-en:reports/de-en/full/$(COMPARE_MD):docs/results.md full-en-de:reports/en-de/full/$(COMPARE_MD):docs/results.md \
	converge-en-de:reports/en-de/converge/$(COMPARE_MD):docs/results.md \
	tuning:reports/de-en/tuning/$(TUNING_MD):docs/results.md \
	tuning-transformer:reports/de-en/tuning/transformer/$(TUNING_MD):docs/results.md quick:reports/de-en/quick/$(COMPARE_MD):docs/results.md \
	bench:$(BENCH_DIR)/$(BENCH_MD):docs/performance.md bench-transformer:reports/de-en/converge/bench/$(BENCH_MD):docs/performance.md \
	memory:reports/$(MEMORY_MD):docs/performance.md bounds:reports/$(BOUNDS_MD):docs/faults.md \
	serve:$(BENCH_DIR)/$(SERVE_MD):docs/serving.md
# The converge table's reading against the lesson, written from its numbers and the seed spread;
# then its verdicts beside those of the other direction(s), each from its own converge comparison.
LESSON_DIR = reports/de-en/converge
LESSON_STUDENTS = reports/de-en/distilled
LESSON_PAIRS ?= de-en en-de
## every table produced so far copied between its markers in README.md and docs/
readme: $(INSTALLED) reports/$(BOUNDS_MD)
	@$(PIPELINE) timings --table --out-dir reports >/dev/null
	@test ! -f $(LESSON_DIR)/$(COMPARE_JSON) || $(PIPELINE) lesson --compare $(LESSON_DIR)/$(COMPARE_JSON) \
		--seeds $(LESSON_DIR)/$(SEEDS_JSON) --students $(LESSON_STUDENTS) --out $(LESSON_DIR)/$(LESSON_MD)
	@$(PIPELINE) directions --compare $(foreach p,$(LESSON_PAIRS),$(p)=reports/$(p)/converge/$(COMPARE_JSON)) \
		--out reports/$(LESSON_DIRECTIONS_MD) >/dev/null
	@$(PIPELINE) archive --reports reports --out reports/$(ARCHIVED_MD) >/dev/null
	@$(PIPELINE) reproduce --reports reports --out reports/$(REPRODUCE_MD) >/dev/null
	@$(foreach t,$(README_TABLES),test ! -f $(word 2,$(subst :, ,$(t))) || \
		$(PIPELINE) readme --compare $(word 2,$(subst :, ,$(t))) --marker $(word 1,$(subst :, ,$(t))) \
		--readme $(word 3,$(subst :, ,$(t))) || exit 1;)

# The import graph of pipeline/ as docs/development.md shows it: each stage folder and the core as
# a box, an arrow for each import from one box into another (tests/import_graph.py, read by ast).
## the picture of pipeline/'s import graph, docs/layout.png, drawn again from the code
layout: $(INSTALLED)
	$(PYTHON) tests/import_graph.py docs/layout.png

# The memory one request may add to the server, by variant and preset: each model built and asked
# (TensorFlow), again only when the models, the export or the config change.
reports/$(BOUNDS_MD): pipeline/decoding/export.py pipeline/config.py $(wildcard pipeline/models/*.py) | $(INSTALLED)
	$(PIPELINE) bounds --out $@ >/dev/null
