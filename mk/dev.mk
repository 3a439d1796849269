# Development extras beyond make test and make lint. Included by the Makefile.

.PHONY: mutate tags

# Mutation testing, not part of make test: cosmic-ray changes one operator at a time in the
# modules below, in place (leave the checkout alone meanwhile), and runs their fast in-process
# tests (tests/mutation/*.toml); reports/mutation.md counts the mutants killed and says why each
# survivor lives (tests/mutation/survivors.toml).
MUTATE_MODULES ?= files checkpoints batching protocol
MUTATE_DIR = runs/mutation
## mutation testing of files, checkpoints, serving's batching and protocol (MUTATE_MODULES=; not in make test)
mutate: $(INSTALLED)
	$(PYTHON) -m pip install --quiet -e '.[test,mutate]'
	rm -rf $(MUTATE_DIR) && mkdir -p $(MUTATE_DIR)
	for m in $(MUTATE_MODULES); do \
		$(VENV)/bin/cosmic-ray init tests/mutation/$$m.toml $(MUTATE_DIR)/$$m.sqlite && \
		$(VENV)/bin/cr-filter-operators $(MUTATE_DIR)/$$m.sqlite tests/mutation/$$m.toml && \
		PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/cosmic-ray exec tests/mutation/$$m.toml \
			$(MUTATE_DIR)/$$m.sqlite || exit 1; \
	done
	$(PYTHON) tests/mutation/summary.py reports/mutation.md $(foreach m,$(MUTATE_MODULES),$(MUTATE_DIR)/$(m).sqlite)

# The versions CHANGELOG.md's headings name ("## 0.3.0 (5c92a35): ..."), each tagged v<version> at
# its commit; -f: again after a heading's commit is corrected. The unreleased version has none.
CHANGELOG ?= CHANGELOG.md
## git tags v<version> at the commits CHANGELOG.md's version headings name
tags:
	sed -n 's/^## \([0-9][0-9.]*\) (\([0-9a-f]\{7,40\}\)).*/\1 \2/p' $(CHANGELOG) | \
		while read version commit; do git tag -f "v$$version" "$$commit" || exit 1; done
	git tag --list 'v*'
