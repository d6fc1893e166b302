"""The trainable side: the trainable tree (`trainable`), prompt initializers (`init`), file
formats (`files`), self-describing prompt directories (`artifact`: `read_prompt`; what they
record checked as data: `recorded`), the residual prompt encoder (`reparam`), deep prompts
(`deep`), banks of prompt directories (`bank_directory`), hard prompts (`hard`), export to
PyTorch and T5X (`export`), nearest-token interpretation (`interpretation`)."""
