"""What every format's exporter builds on: the exporter interface and the job it is given
(base.py), the shared `torch.export` step (graph.py), the int8 plan of calibrated
precisions (int8.py) and the words that describe an artifact's tensors (describe.py).
The export pipeline that drives an exporter is `casvit_deploy.pipeline`; each format's
exporter is in its folder under `casvit_deploy.formats`."""
