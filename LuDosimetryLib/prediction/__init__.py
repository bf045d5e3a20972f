"""Prediction of 177Lu absorbed doses from the pre-therapy dynamic 68Ga-PSMA-11 PET (docs/prediction.md).

Modules: ``decay`` (68Ga → biological, once), ``population`` (177Lu washout table), ``uptake``
(the uptake–washout model), ``predict`` (region TIA and dose per GBq), ``pet_kinetics`` (Patlak,
irreversible two-tissue model, image-derived input function), ``regions`` (region TACs from the
PET images and field-of-view checks), ``voxel`` (predicted TIA map), ``lesions`` (detection,
transfer, matching), ``comparison`` (dose difference, DVH, gamma index), ``calibration``
(leave-one-patient-out scale factors), ``pipeline`` (one patient, results folder).
"""
