"""Field-of-view fractions of the region TACs (prediction.regions.region_pet_tacs) against voxel counts."""

from datetime import datetime

import numpy as np
import pytest
import SimpleITK as sitk

from LuDosimetryLib.labels import LabelTable, Region
from LuDosimetryLib.model import Administration, PetFrame, PetStudy, Segmentation
from LuDosimetryLib.prediction.parameters import PredictionParameters
from LuDosimetryLib.prediction.regions import region_pet_tacs


def _image(arr, spacing, origin=(0.0, 0.0, 0.0)):
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    return img


@pytest.mark.parametrize("shift_mm", [0.0, 8.0])
def test_fov_fractions_are_the_reference_voxels_whose_centre_maps_inside_each_pet_grid(shift_mm):
    """A 20-slice label map (2 mm); a dynamic bed of 8 slices (4 mm) over its lower part, a static over all.

    The transform maps PET points to reference points (+``shift_mm`` in z): the bed then covers the
    reference slices whose centres lie in [bed start, bed end) + shift.
    """
    lab = np.zeros((20, 10, 10), np.uint8)
    lab[2:12, 2:8, 2:8] = 1  # liver: slices 2–11
    lab[8:18, 3:6, 3:6] = 2  # kidney: slices 8–17
    labels = _image(lab, (2.0, 2.0, 2.0))
    table = LabelTable((Region(1, "liver"), Region(2, "kidney_cortex_left")))
    a0 = 1.8e8
    bed = _image(np.full((8, 5, 5), 1000.0, np.float32), (4.0, 4.0, 4.0), (1.0, 1.0, -1.0))
    whole = _image(np.full((12, 5, 5), 1000.0, np.float32), (4.0, 4.0, 4.0), (1.0, 1.0, -1.0))
    frames = tuple(PetFrame(t, 0.1, t + 0.05, bed) for t in (0.0, 0.1, 0.2, 0.3, 0.4))
    study = PetStudy(Administration("Ga-68", "PSMA-11", datetime(2026, 1, 1, 9), a0), frames,
                     static=PetFrame(1.0, 0.2, 1.1, whole))
    tx = sitk.TranslationTransform(3, (0.0, 0.0, shift_mm))
    _, fov = region_pet_tacs(study, Segmentation(labels, table), transform=tx,
                             params=PredictionParameters(pet_recovery=1.0))
    # reference slice k (centre z = 2k mm) is inside the bed if z − shift lies in the bed's extent [−3, 29) mm
    z = 2.0 * np.arange(20)
    in_bed = (z - shift_mm >= -3.0) & (z - shift_mm < 29.0)
    for name, value in (("liver", 1), ("kidney_cortex_left", 2)):
        per_slice = (lab == value).sum(axis=(1, 2))
        assert fov[name].dynamic_fraction == pytest.approx(per_slice[in_bed].sum() / per_slice.sum(), abs=1e-12)
        assert fov[name].static_fraction == pytest.approx(1.0 if shift_mm == 0 else
                                                          per_slice[z - shift_mm >= -3.0].sum() / per_slice.sum())
        assert fov[name].volume_mL == pytest.approx(per_slice.sum() * 8e-3)
