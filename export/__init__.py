"""Workstation side of edge_sched: turn diffusers pipelines into ONNX / OpenVINO folders.

This package may use torch, diffusers and optimum; the device runtime (``edge_sched``)
never imports it. The exporters land with the export issue; for now it only marks the place.
"""
