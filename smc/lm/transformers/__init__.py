"""The transformers backend (`backend.TransformersLM`) and its speed work: the shared KV store
(`kv`), two-part prefix attention (`attention`), token draws on the device (`sampling`), oneDNN
packed linears (`packed`) and the run-scoped cycle-collector freeze (`heap`).

A newcomer may ignore this folder: programs reach it only through `load_lm`.
"""
