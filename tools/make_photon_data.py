"""Regenerate ``LuDosimetryLib/data/photon_attenuation.json`` (developer tool, not run by the library).

Mass attenuation μ/ρ and mass energy-absorption μ_en/ρ coefficients (cm²/g) of the tissues of the
177Lu voxel S-value tables, from the elemental data of the ``mucoeff`` package (1.0.0; Boone &
Chavez, Med. Phys. 23 (1996) 1997-2005, doi:10.1118/1.597899; data CC-BY 4.0), combined by the
mixture rule over ICRU Report 44 (1989) elemental mass fractions. The water exposure buildup
factors are the geometric-progression (GP) coefficients of ANSI/ANS-6.4.3-1991 (as transcribed in
the MIT-licensed ZapMeNot package, AlanFord/ZapMeNot, zap_me_not/materialLibrary.yml).

Usage: python tools/make_photon_data.py  (needs ``pip install mucoeff``)
"""

import json
import pathlib

import mucoeff
import numpy as np
from mucoeff.api import Flag

OUT = pathlib.Path(__file__).resolve().parents[1] / "LuDosimetryLib" / "data" / "photon_attenuation.json"

# ICRU Report 44 (1989) elemental mass fractions; densities as used by Lanconelli et al. (2012).
TISSUES = {
    "water": {"density_g_per_mL": 1.0, "fractions": {1: 0.111894, 8: 0.888106}},
    "soft": {"density_g_per_mL": 1.04, "fractions": {1: 0.102, 6: 0.143, 7: 0.034, 8: 0.708, 11: 0.002,
                                                     15: 0.003, 16: 0.003, 17: 0.002, 19: 0.003}},
    "bone": {"density_g_per_mL": 1.92, "fractions": {1: 0.034, 6: 0.155, 7: 0.042, 8: 0.435, 11: 0.001,
                                                     12: 0.002, 15: 0.103, 16: 0.003, 20: 0.225}},
}
ENERGIES_keV = np.unique(np.round(np.geomspace(10.0, 500.0, 60), 3))

GP_WATER_MeV = [0.015, 0.020, 0.030, 0.040, 0.050, 0.060, 0.080, 0.100, 0.150, 0.200, 0.300, 0.400, 0.500]
GP_WATER = [  # b, c, a, X, d
    [1.182, 0.463, 0.175, 14.23, -0.0908], [1.427, 0.549, 0.143, 14.86, -0.0707],
    [2.335, 0.736, 0.087, 13.28, -0.0419], [3.477, 1.117, -0.019, 11.67, 0.0026],
    [4.461, 1.457, -0.084, 13.62, 0.0341], [4.983, 1.730, -0.126, 13.64, 0.0561],
    [5.059, 2.059, -0.168, 13.67, 0.0770], [4.663, 2.221, -0.186, 13.33, 0.0826],
    [3.897, 2.242, -0.185, 14.19, 0.0777], [3.478, 2.154, -0.176, 14.50, 0.0774],
    [2.920, 2.022, -0.164, 14.21, 0.0655], [2.660, 1.882, -0.149, 14.24, 0.0595],
    [2.500, 1.766, -0.135, 14.33, 0.0546],
]


def mixture(flag, fractions):
    return sum(w * np.asarray(mucoeff.mu(flag, z, ENERGIES_keV), dtype=float) for z, w in fractions.items())


def main():
    tissues = {}
    for name, t in TISSUES.items():
        tissues[name] = {
            "density_g_per_mL": t["density_g_per_mL"],
            "mass_fractions": {str(z): w for z, w in t["fractions"].items()},
            "mu_over_rho_cm2_per_g": [round(float(v), 6) for v in mixture(Flag.MU_TOT, t["fractions"])],
            "mu_en_over_rho_cm2_per_g": [round(float(v), 6) for v in mixture(Flag.MU_EN_TOT, t["fractions"])],
        }
    data = {
        "_about": ("Photon interaction data for the 177Lu dose kernel's photon part. Regenerate with "
                   "tools/make_photon_data.py. Energies in keV, coefficients in cm2/g."),
        "sources": {
            "mucoeff": ("PyPI mucoeff 1.0.0 (Python port of MUCOEFF; Boone J.M. and Chavez A.E., Med. Phys. 23 "
                        "(1996) 1997-2005, doi:10.1118/1.597899; data licence CC-BY 4.0): elemental mu/rho and "
                        "mu_en/rho (MU_TOT, MU_EN_TOT), mixture rule over mass fractions"),
            "ICRU44": "ICRU Report 44 (1989): elemental mass fractions of soft tissue and cortical bone",
            "Lanconelli2012": ("densities as used for the voxel S-value tables (soft tissue 1.04, cortical bone "
                               "1.92 g/mL): Lanconelli et al., Phys. Med. Biol. 57 (2012) 517-533"),
            "ANSI_ANS_6_4_3": ("ANSI/ANS-6.4.3-1991 geometric-progression exposure buildup factor coefficients "
                               "for water (b, c, a, X, d), as transcribed in ZapMeNot (MIT), "
                               "zap_me_not/materialLibrary.yml"),
            "mucoeff_KA1": "mucoeff 1.0.0 K-alpha1 line energy of Hf (Z=72), the daughter of 177Lu",
        },
        "energies_keV": [float(e) for e in ENERGIES_keV],
        "tissues": tissues,
        "buildup_gp_water": {"energies_keV": [1000.0 * e for e in GP_WATER_MeV], "b_c_a_X_d": GP_WATER,
                             "source": "ANSI_ANS_6_4_3"},
        "xray_effective_energy_keV": {"Lu-177": round(float(np.atleast_1d(mucoeff.mu(Flag.KA1, 72))[0]), 3),
                                      "source": "mucoeff_KA1"},
    }
    OUT.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
