"""What a job adds to a pipeline: LoRAs, textual-inversion embeddings, ControlNet units."""
