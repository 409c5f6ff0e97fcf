# Quickstart targets: each one builds .venv on first use and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install demo test lint format bench clean qemu-user chromium

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch lies on local disk; any other spec pulls a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,viz]"
	touch $(STAMP)

install: $(STAMP) qemu-user chromium

# QEMU's user-mode emulator runs the int8 tests on a CPU without VNNI whatever the host
# (tests/export/test_cpu_kernels.py). Installed when make runs as root with apt-get; otherwise
# those tests are skipped, saying why.
qemu-user:
	@command -v qemu-x86_64 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user) \
	      || echo "could not install qemu-user: the non-VNNI int8 tests will be skipped"; \
	  else \
	    echo "qemu-x86_64 missing (as root: apt-get install qemu-user): the non-VNNI int8 tests will be skipped"; \
	  fi; }

# Debian's Chromium runs the report's browser test (tests/report/test_report_browser.py,
# through Playwright, which never downloads a browser). Installed when make runs as root with
# apt-get; otherwise that test is skipped, saying why.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) \
	      || echo "could not install chromium: the report's browser test will be skipped"; \
	  else \
	    echo "chromium missing (as root: apt-get install chromium): the report's browser test will be skipped"; \
	  fi; }

demo: $(STAMP)
	$(VENV)/bin/embodied-mm demo --out outputs/demo

test: $(STAMP) qemu-user chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -n 2 --timeout 900

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP)
	for b in model envs experts data train deploy export teleop; do \
	  $(VENV)/bin/embodied-mm bench $$b || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info outputs

# The shipped default policy, end to end (demos → grounding stage → instruction tuning →
# held-out evaluation → copy into sim_assets/checkpoints/default). About 50 min on 2 CPU cores.
DEFAULT_TASKS := embodied_mm/ReachObject-v0 embodied_mm/PickLift-v0
DEFAULT_DEMOS := 3500
DEFAULT_RUN := runs/default_policy
# the recipe preset and its policy fields (ResNet tower with FiLM and keypoints, goal loss, ...)
DEFAULT_CONFIG := configs/default-policy.yaml
DEFAULT_GROUND_STEPS := 1500
DEFAULT_STEPS := 4000
DEFAULT_DATASETS = $(shell echo $(DEFAULT_TASKS) | sed 's#embodied_mm/\([A-Za-z]*\)-v0#runs/demos/\1#g; s/ /,/g')
DEFAULT_TRAIN = OMP_NUM_THREADS=1 $(VENV)/bin/embodied-mm train --config $(DEFAULT_CONFIG) \
	  --dataset $(DEFAULT_DATASETS)

# Re-running continues where it stopped: record and both train stages run with --resume
# (a finished stage says so and moves on).
.PHONY: default-policy
default-policy: $(STAMP)
	for env in $(DEFAULT_TASKS); do \
	  name=$$(echo $$env | sed 's#.*/##; s#-v0##'); \
	  $(VENV)/bin/embodied-mm record --env $$env --episodes $(DEFAULT_DEMOS) --workers 2 \
	    --out runs/demos/$$name --resume || exit 1; \
	done
	$(DEFAULT_TRAIN) --stage ground --out $(DEFAULT_RUN)/ground --resume --steps $(DEFAULT_GROUND_STEPS) \
	  --batch-size 64 --lr 1e-3 --warmup-steps 50 --save-every 500
	$(DEFAULT_TRAIN) --out $(DEFAULT_RUN)/instruct --resume --steps $(DEFAULT_STEPS) --batch-size 32 \
	  --lr 5e-4 --warmup-steps 200 --save-every 1000 \
	  --init-from $(DEFAULT_RUN)/ground/checkpoints/step-$$(printf %07d $(DEFAULT_GROUND_STEPS))/policy
	$(VENV)/bin/embodied-mm eval --checkpoint $(DEFAULT_RUN)/instruct/checkpoints/step-$$(printf %07d $(DEFAULT_STEPS))/policy \
	  --env $$(echo $(DEFAULT_TASKS) | tr ' ' ,) --episodes 50 --out $(DEFAULT_RUN)/eval
	rm -rf sim_assets/checkpoints/default
	mkdir -p sim_assets/checkpoints
	cp -r $(DEFAULT_RUN)/instruct/checkpoints/step-$$(printf %07d $(DEFAULT_STEPS))/policy sim_assets/checkpoints/default

# The seven-task generalist (docs/training.md, "One policy for every task"): the same stages
# for every task of the suite, then held-out evaluations (MuJoCo with training and held-out
# phrasings, PyBullet; deploy's default --mode async) and the plan exact match on held-out
# demo frames; the grounding is checked on held-out first frames (eval-goals) before the
# instruction stage. Re-running continues
# where it stopped: datasets and both training stages resume, a finished evaluation is kept.
GEN_TASKS := ReachObject PickLift PushCube PickPlaceBin StackCube PlaceOnPlate SortByColor
GEN_DEMOS := 3500
GEN_HELDOUT_DEMOS := 20
GEN_RUN := runs/generalist
GEN_CONFIG := configs/generalist-policy.yaml
GEN_GROUND_STEPS := 10000
GEN_STEPS := 12000
GEN_EPISODES := 50
GEN_DATASETS = $(shell echo $(GEN_TASKS) | sed 's#\([A-Za-z]*\)#runs/demos/\1#g; s/ /,/g')
GEN_HELDOUT_DATASETS = $(shell echo $(GEN_DATASETS) | sed 's#runs/demos/#runs/demos-heldout/#g')
GEN_POLICY = $(GEN_RUN)/instruct/checkpoints/step-$$(printf %07d $(GEN_STEPS))/policy
GEN_TRAIN = OMP_NUM_THREADS=2 $(VENV)/bin/embodied-mm train --config $(GEN_CONFIG) \
	  --dataset $(GEN_DATASETS)
GEN_EVAL = $(VENV)/bin/embodied-mm eval --checkpoint $(GEN_POLICY) --env all \
	  --episodes $(GEN_EPISODES)

.PHONY: generalist-policy
generalist-policy: $(STAMP)
	for name in $(GEN_TASKS); do \
	  $(VENV)/bin/embodied-mm record --env embodied_mm/$$name-v0 --episodes $(GEN_DEMOS) \
	    --workers 2 --out runs/demos/$$name --resume || exit 1; \
	  $(VENV)/bin/embodied-mm record --env embodied_mm/$$name-v0 --episodes $(GEN_HELDOUT_DEMOS) \
	    --seed 200000 --out runs/demos-heldout/$$name --resume || exit 1; \
	done
	$(GEN_TRAIN) --stage ground --out $(GEN_RUN)/ground --resume --steps $(GEN_GROUND_STEPS) \
	  --batch-size 64 --lr 1e-3 --warmup-steps 50 --save-every 500
	test -f $(GEN_RUN)/eval/ground-goals/goal_error.json || \
	  $(VENV)/bin/embodied-mm eval-goals --episodes $(GEN_HELDOUT_DEMOS) \
	    --checkpoint $(GEN_RUN)/ground/checkpoints/step-$$(printf %07d $(GEN_GROUND_STEPS))/policy \
	    --dataset $(GEN_HELDOUT_DATASETS) --out $(GEN_RUN)/eval/ground-goals
	$(GEN_TRAIN) --out $(GEN_RUN)/instruct --resume --steps $(GEN_STEPS) --batch-size 32 \
	  --lr 5e-4 --warmup-steps 200 --save-every 1000 \
	  --init-from $(GEN_RUN)/ground/checkpoints/step-$$(printf %07d $(GEN_GROUND_STEPS))/policy
	test -f $(GEN_RUN)/eval/mujoco-train/eval_info.json || \
	  $(GEN_EVAL) --out $(GEN_RUN)/eval/mujoco-train
	test -f $(GEN_RUN)/eval/mujoco-heldout/eval_info.json || \
	  $(GEN_EVAL) --split heldout --out $(GEN_RUN)/eval/mujoco-heldout
	test -f $(GEN_RUN)/eval/pybullet-train/eval_info.json || \
	  $(GEN_EVAL) --engine pybullet --out $(GEN_RUN)/eval/pybullet-train
	test -f $(GEN_RUN)/eval/mujoco-train-async/eval_info.json || \
	  $(GEN_EVAL) --mode async --out $(GEN_RUN)/eval/mujoco-train-async
	test -f $(GEN_RUN)/eval/plans/plan_match.json || \
	  $(VENV)/bin/embodied-mm eval-plans --checkpoint $(GEN_POLICY) --episodes $(GEN_HELDOUT_DEMOS) \
	    --dataset $(GEN_HELDOUT_DATASETS) --out $(GEN_RUN)/eval/plans

# The chunk-execution benchmark's policy (docs/benchmarks.md, "Chunk execution against policy
# latency"): the shipped default fine-tuned with RTC prefix conditioning (--rtc-max-delay 6)
# on 1000 fresh demos per task, then every --mode at 0/100/200/300 ms, 50 episodes per cell
# and task. Re-running continues where it stopped (datasets, training, grid cells).
RTC_RUN := runs/rtc
RTC_STEPS := 2000
RTC_POLICY = $(RTC_RUN)/train/checkpoints/step-$$(printf %07d $(RTC_STEPS))/policy

.PHONY: rtc-benchmark
rtc-benchmark: $(STAMP)
	for env in $(DEFAULT_TASKS); do \
	  name=$$(echo $$env | sed 's#.*/##; s#-v0##'); \
	  $(VENV)/bin/embodied-mm record --env $$env --episodes 1000 --workers 2 \
	    --out $(RTC_RUN)/demos/$$name --resume || exit 1; \
	done
	OMP_NUM_THREADS=1 $(VENV)/bin/embodied-mm train --config $(DEFAULT_CONFIG) \
	  --dataset $(RTC_RUN)/demos/ReachObject,$(RTC_RUN)/demos/PickLift \
	  --init-from sim_assets/checkpoints/default --rtc-max-delay 6 --steps $(RTC_STEPS) \
	  --batch-size 32 --lr 3e-4 --warmup-steps 100 --save-every 500 --out $(RTC_RUN)/train --resume
	$(VENV)/bin/embodied-mm bench chunking --checkpoint $(RTC_POLICY) \
	  --env $$(echo $(DEFAULT_TASKS) | tr ' ' ,) --episodes 50 --out $(RTC_RUN)/grid
