"""Figures papers print, made from what runs already wrote (never by generating again).

One module per figure kind, each with a function returning the written path so that other
reports (the HTML report) can call it:

- :func:`harness.figures.compare.compare_figure`: label map | real | method A | method B ...
- :func:`harness.figures.multimodal.multimodal_figure` / ``edit_figures``: K samples per label
  map; GroupDNet's class-wise re-sampling and morphing sequences (``harness edit``);
- :func:`harness.figures.classes.classes_figure`: per-class IoU heatmap + where methods differ;
- :func:`harness.figures.curves.curves_figure`: every numeric quantity of train_log.jsonl.

matplotlib always runs with the Agg backend (no display, same pixels everywhere). File names are
derived from the arguments only (no time stamps), so re-running a command overwrites its figure.
"""
