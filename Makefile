# The two commands of the README. Each sets this machine up first (idempotent).
.PHONY: demo test
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
