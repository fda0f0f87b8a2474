"""Running a converted model: the classifier, its runtime, how cores are shared."""
