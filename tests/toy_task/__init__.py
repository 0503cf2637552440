"""A third task in four files, as a user adds one (docs/contributing.md, "A new task"): x2 super-resolution of
smooth random images, scored by PSNR. tests/tasks/test_toy_task.py sweeps it and reads its report."""
