"""Pretraining jaxprompt's embedded tiny T5 (`tools/pretrain_tiny.py` is the command).

Objective: a mixture, per example, of T5's span corruption and prefix LM ("LM adaptation":
continue the text from a split point), so that the decoder both reads the encoder and
generates a word right after the input, plus a masked-token loss on the encoder outputs.
Modules: settings (config), corpus, objectives and batches, what the run watches (monitor),
the run itself (run: optimizer, loss, `pretrain`, `write_model`) on the all-weights step
and loop of `jaxprompt.training.weights`.
"""
