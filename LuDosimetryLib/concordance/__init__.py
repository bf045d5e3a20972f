"""Agreement of predicted and measured absorbed doses: per region, per patient, over a cohort."""
