"""The trainable side: the trainable tree (`trainable`), prompt initializers (`init`), file
formats (`files`), deep prompts (`deep`), the prompt bank (`bank`), hard prompts (`hard`),
export to PyTorch and T5X (`export`), nearest-token interpretation (`interpretation`)."""
