# Thin aliases: the logic lives in tools/course.py, which also runs without make.
PYTHON ?= python3

.PHONY: lab test setup execute format render lock students train models

lab:
	$(PYTHON) tools/course.py lab
test:
	$(PYTHON) tools/course.py test
setup:
	$(PYTHON) tools/course.py setup
execute:
	$(PYTHON) tools/course.py execute
format:
	$(PYTHON) tools/course.py format
render:
	$(PYTHON) tools/course.py render
lock:
	$(PYTHON) tools/course.py lock
students:
	$(PYTHON) tools/course.py students
train:
	$(PYTHON) tools/course.py train
models:
	$(PYTHON) tools/course.py models
