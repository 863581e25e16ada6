"""The efficient-SAM zoo: published models that keep SAM's prompt encoder and mask decoder
(or add a small head to it), their key layouts and their predictor options."""
