"""Weight-based circuit analysis: factored matrices, QK/OV circuits, composition scores."""
