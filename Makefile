# Lambda packages for template.yaml. `sam build` runs one target per resource (BuildMethod:
# makefile), from the repository root, with ARTIFACTS_DIR set to that resource's build folder.
#
#   build-<Step>Function    the handlers (functions/*.py, at the package root) and the pure
#                           modules of the labelloop package; the same files for all seven steps
#   build-DependenciesLayer functions/requirements.txt (pinned), as wheels for the Lambda runtime
#                           (python3.12 on Amazon Linux 2023), whatever machine builds them

PYTHON ?= python3
LAMBDA_PYTHON_VERSION := 3.12
# numpy 2.4 and scipy 1.17 ship manylinux_2_28 wheels only, pydantic-core manylinux2014 ones;
# Amazon Linux 2023 has glibc 2.34, so both run there.
LAMBDA_PLATFORMS := manylinux_2_28_x86_64 manylinux2014_x86_64

# labelloop modules that run on a developer's machine only (command line, deploy helper, the
# metrics table of `run`, `status` and `report`). Of the sub-packages only STEP_PACKAGES are
# copied (not local/, datasets/, report/).
LOCAL_ONLY := labelloop/cli.py labelloop/aws_cli.py labelloop/deploy.py labelloop/metrics_table.py
STEP_MODULES := $(filter-out $(LOCAL_ONLY),$(wildcard labelloop/*.py))
# Sub-packages the steps import: one module per step, one module or package per task type.
STEP_PACKAGES := steps tasks

STEPS := Bootstrap SampleForHumans MergeHumanLabels SplitValidation CalibrateThreshold GateAndRoute ExportOutput
FUNCTION_TARGETS := $(foreach step,$(STEPS),build-$(step)Function)

.PHONY: $(FUNCTION_TARGETS) build-DependenciesLayer

$(FUNCTION_TARGETS):
	test -n "$(ARTIFACTS_DIR)"
	mkdir -p "$(ARTIFACTS_DIR)/labelloop"
	cp -p functions/*.py "$(ARTIFACTS_DIR)/"
	cp -p $(STEP_MODULES) "$(ARTIFACTS_DIR)/labelloop/"
	# a task type may be a package of its own: copy each sub-package's tree of modules
	for f in $$(find $(addprefix labelloop/,$(STEP_PACKAGES)) -name '*.py'); do \
		mkdir -p "$(ARTIFACTS_DIR)/$$(dirname $$f)" && cp -p "$$f" "$(ARTIFACTS_DIR)/$$f" || exit 1; done

build-DependenciesLayer:
	test -n "$(ARTIFACTS_DIR)"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile \
		--requirement functions/requirements.txt \
		--target "$(ARTIFACTS_DIR)/python" \
		$(foreach platform,$(LAMBDA_PLATFORMS),--platform $(platform)) --implementation cp \
		--python-version $(LAMBDA_PYTHON_VERSION) --only-binary=:all:
