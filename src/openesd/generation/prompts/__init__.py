"""Prompts as A1111 writes them: attention weights, BREAK, `<lora:...>` tags, 75-token chunks, embeddings."""
