"""Text handling shared by data preparation and models: normalisation, hashtags, tokens."""
