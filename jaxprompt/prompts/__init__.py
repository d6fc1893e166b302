"""The trainable side: the trainable tree (`trainable`), prompt initializers (`init`), file
formats (`files`), self-describing prompt directories (`artifact`: `read_prompt`), the
residual prompt encoder (`reparam`), deep prompts (`deep`), the prompt bank (`bank`), hard prompts (`hard`),
export to PyTorch and T5X (`export`), nearest-token interpretation (`interpretation`)."""
