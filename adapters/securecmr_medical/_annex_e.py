"""DICOM PS3.15 Annex E, Table E.1-1: Basic Application Level Confidentiality Profile (subset).

Actions: ``D`` replace with a dummy value of the same VR, ``Z`` replace with an empty value,
``X`` remove, ``K`` keep, ``C`` clean (here: treated as ``X``, since free-text descriptors are not
needed for retrieval), ``U`` replace the UID with a consistent keyed-hash UID.
Compound actions of the standard (``X/Z``, ``X/D``, ``X/Z/D``, ``Z/D``, ``X/Z/U*``) are resolved
to the single action listed here: removal where the attribute is optional, an empty value where
it is Type 2, a dummy where it is Type 1 in common IODs.

Attributes of the profile that are not listed below but hold UIDs are replaced (``U``) when they
are instance UIDs (not a well-known class / transfer-syntax UID); all private tags are removed;
curve data (50xx) and overlay comments (60xx,4000) are removed.
"""

from __future__ import annotations

__all__ = ["ACTIONS", "PATIENT_CHARACTERISTICS", "PROFILE_CODES"]

# (group, element): action
ACTIONS: dict[tuple[int, int], str] = {
    # --- patient -----------------------------------------------------------------------------
    (0x0010, 0x0010): "Z",  # Patient's Name
    (0x0010, 0x0020): "Z",  # Patient ID
    (0x0010, 0x0021): "X",  # Issuer of Patient ID
    (0x0010, 0x0030): "Z",  # Patient's Birth Date
    (0x0010, 0x0032): "X",  # Patient's Birth Time
    (0x0010, 0x0040): "Z",  # Patient's Sex
    (0x0010, 0x0050): "X",  # Patient's Insurance Plan Code Sequence
    (0x0010, 0x0101): "X",  # Patient's Primary Language Code Sequence
    (0x0010, 0x1000): "X",  # Other Patient IDs
    (0x0010, 0x1001): "X",  # Other Patient Names
    (0x0010, 0x1002): "X",  # Other Patient IDs Sequence
    (0x0010, 0x1005): "X",  # Patient's Birth Name
    (0x0010, 0x1010): "X",  # Patient's Age
    (0x0010, 0x1020): "X",  # Patient's Size
    (0x0010, 0x1030): "X",  # Patient's Weight
    (0x0010, 0x1040): "X",  # Patient's Address
    (0x0010, 0x1050): "X",  # Insurance Plan Identification
    (0x0010, 0x1060): "X",  # Patient's Mother's Birth Name
    (0x0010, 0x1080): "X",  # Military Rank
    (0x0010, 0x1081): "X",  # Branch of Service
    (0x0010, 0x1090): "X",  # Medical Record Locator
    (0x0010, 0x1100): "X",  # Referenced Patient Photo Sequence
    (0x0010, 0x2000): "X",  # Medical Alerts
    (0x0010, 0x2110): "X",  # Allergies
    (0x0010, 0x2150): "X",  # Country of Residence
    (0x0010, 0x2152): "X",  # Region of Residence
    (0x0010, 0x2154): "X",  # Patient's Telephone Numbers
    (0x0010, 0x2155): "X",  # Patient's Telecom Information
    (0x0010, 0x2160): "X",  # Ethnic Group
    (0x0010, 0x2180): "X",  # Occupation
    (0x0010, 0x21A0): "X",  # Smoking Status
    (0x0010, 0x21B0): "X",  # Additional Patient History
    (0x0010, 0x21C0): "X",  # Pregnancy Status
    (0x0010, 0x21D0): "X",  # Last Menstrual Date
    (0x0010, 0x21F0): "X",  # Patient's Religious Preference
    (0x0010, 0x2203): "X",  # Patient's Sex Neutered
    (0x0010, 0x2297): "X",  # Responsible Person
    (0x0010, 0x2299): "X",  # Responsible Organization
    (0x0010, 0x4000): "X",  # Patient Comments
    (0x0038, 0x0010): "X",  # Admission ID
    (0x0038, 0x0300): "X",  # Current Patient Location
    (0x0038, 0x0400): "X",  # Patient's Institution Residence
    (0x0038, 0x0500): "X",  # Patient State
    (0x0038, 0x4000): "X",  # Visit Comments
    # --- study / series / instance ------------------------------------------------------------
    (0x0008, 0x0012): "X",  # Instance Creation Date
    (0x0008, 0x0013): "X",  # Instance Creation Time
    (0x0008, 0x0014): "U",  # Instance Creator UID
    (0x0008, 0x0018): "U",  # SOP Instance UID
    (0x0008, 0x0020): "Z",  # Study Date
    (0x0008, 0x0021): "X",  # Series Date
    (0x0008, 0x0022): "X",  # Acquisition Date
    (0x0008, 0x0023): "Z",  # Content Date
    (0x0008, 0x0024): "X",  # Overlay Date
    (0x0008, 0x0025): "X",  # Curve Date
    (0x0008, 0x002A): "X",  # Acquisition DateTime
    (0x0008, 0x0030): "Z",  # Study Time
    (0x0008, 0x0031): "X",  # Series Time
    (0x0008, 0x0032): "X",  # Acquisition Time
    (0x0008, 0x0033): "Z",  # Content Time
    (0x0008, 0x0034): "X",  # Overlay Time
    (0x0008, 0x0035): "X",  # Curve Time
    (0x0008, 0x0050): "Z",  # Accession Number
    (0x0008, 0x0080): "X",  # Institution Name
    (0x0008, 0x0081): "X",  # Institution Address
    (0x0008, 0x0082): "X",  # Institution Code Sequence
    (0x0008, 0x0090): "Z",  # Referring Physician's Name
    (0x0008, 0x0092): "X",  # Referring Physician's Address
    (0x0008, 0x0094): "X",  # Referring Physician's Telephone Numbers
    (0x0008, 0x0096): "X",  # Referring Physician Identification Sequence
    (0x0008, 0x1010): "X",  # Station Name
    (0x0008, 0x1030): "X",  # Study Description
    (0x0008, 0x103E): "X",  # Series Description
    (0x0008, 0x1040): "X",  # Institutional Department Name
    (0x0008, 0x1048): "X",  # Physician(s) of Record
    (0x0008, 0x1049): "X",  # Physician(s) of Record Identification Sequence
    (0x0008, 0x1050): "X",  # Performing Physicians' Name
    (0x0008, 0x1052): "X",  # Performing Physician Identification Sequence
    (0x0008, 0x1060): "X",  # Name of Physician(s) Reading Study
    (0x0008, 0x1062): "X",  # Physician(s) Reading Study Identification Sequence
    (0x0008, 0x1070): "X",  # Operators' Name
    (0x0008, 0x1072): "X",  # Operator Identification Sequence
    (0x0008, 0x1080): "X",  # Admitting Diagnoses Description
    (0x0008, 0x1084): "X",  # Admitting Diagnoses Code Sequence
    (0x0008, 0x1110): "X",  # Referenced Study Sequence
    (0x0008, 0x1111): "X",  # Referenced Performed Procedure Step Sequence
    (0x0008, 0x1120): "X",  # Referenced Patient Sequence
    (0x0008, 0x1155): "U",  # Referenced SOP Instance UID
    (0x0008, 0x2111): "X",  # Derivation Description
    (0x0008, 0x3010): "U",  # Irradiation Event UID
    (0x0008, 0x4000): "X",  # Identifying Comments
    (0x0018, 0x1000): "X",  # Device Serial Number
    (0x0018, 0x1002): "U",  # Device UID
    (0x0018, 0x1004): "X",  # Plate ID
    (0x0018, 0x1005): "X",  # Generator ID
    (0x0018, 0x1007): "X",  # Cassette ID
    (0x0018, 0x1008): "X",  # Gantry ID
    (0x0018, 0x1030): "X",  # Protocol Name
    (0x0018, 0x1400): "X",  # Acquisition Device Processing Description
    (0x0018, 0x4000): "X",  # Acquisition Comments
    (0x0018, 0x700A): "X",  # Detector ID
    (0x0020, 0x000D): "U",  # Study Instance UID
    (0x0020, 0x000E): "U",  # Series Instance UID
    (0x0020, 0x0010): "Z",  # Study ID
    (0x0020, 0x0052): "U",  # Frame of Reference UID
    (0x0020, 0x0200): "U",  # Synchronization Frame of Reference UID
    (0x0020, 0x3401): "X",  # Modifying Device ID
    (0x0020, 0x3404): "X",  # Modifying Device Manufacturer
    (0x0020, 0x3406): "X",  # Modified Image Description
    (0x0020, 0x4000): "X",  # Image Comments
    (0x0020, 0x9158): "X",  # Frame Comments
    (0x0020, 0x9161): "U",  # Concatenation UID
    (0x0020, 0x9164): "U",  # Dimension Organization UID
    (0x0028, 0x4000): "X",  # Image Presentation Comments
    (0x0032, 0x0012): "X",  # Study ID Issuer
    (0x0032, 0x1020): "X",  # Scheduled Study Location
    (0x0032, 0x1021): "X",  # Scheduled Study Location AE Title
    (0x0032, 0x1030): "X",  # Reason for Study
    (0x0032, 0x1032): "X",  # Requesting Physician
    (0x0032, 0x1033): "X",  # Requesting Service
    (0x0032, 0x1060): "X",  # Requested Procedure Description
    (0x0032, 0x1070): "X",  # Requested Contrast Agent
    (0x0032, 0x4000): "X",  # Study Comments
    (0x0040, 0x0001): "X",  # Scheduled Station AE Title
    (0x0040, 0x0002): "X",  # Scheduled Procedure Step Start Date
    (0x0040, 0x0003): "X",  # Scheduled Procedure Step Start Time
    (0x0040, 0x0004): "X",  # Scheduled Procedure Step End Date
    (0x0040, 0x0005): "X",  # Scheduled Procedure Step End Time
    (0x0040, 0x0006): "X",  # Scheduled Performing Physician Name
    (0x0040, 0x0007): "X",  # Scheduled Procedure Step Description
    (0x0040, 0x000B): "X",  # Scheduled Performing Physician Identification Sequence
    (0x0040, 0x0010): "X",  # Scheduled Station Name
    (0x0040, 0x0011): "X",  # Scheduled Procedure Step Location
    (0x0040, 0x0241): "X",  # Performed Station AE Title
    (0x0040, 0x0242): "X",  # Performed Station Name
    (0x0040, 0x0243): "X",  # Performed Location
    (0x0040, 0x0244): "X",  # Performed Procedure Step Start Date
    (0x0040, 0x0245): "X",  # Performed Procedure Step Start Time
    (0x0040, 0x0250): "X",  # Performed Procedure Step End Date
    (0x0040, 0x0251): "X",  # Performed Procedure Step End Time
    (0x0040, 0x0253): "X",  # Performed Procedure Step ID
    (0x0040, 0x0254): "X",  # Performed Procedure Step Description
    (0x0040, 0x0275): "X",  # Request Attributes Sequence
    (0x0040, 0x0280): "X",  # Comments on the Performed Procedure Step
    (0x0040, 0x0555): "X",  # Acquisition Context Sequence
    (0x0040, 0x1001): "X",  # Requested Procedure ID
    (0x0040, 0x1004): "X",  # Patient Transport Arrangements
    (0x0040, 0x1005): "X",  # Requested Procedure Location
    (0x0040, 0x1010): "X",  # Names of Intended Recipients of Results
    (0x0040, 0x1011): "X",  # Intended Recipients of Results Identification Sequence
    (0x0040, 0x1102): "X",  # Person's Address
    (0x0040, 0x1103): "X",  # Person's Telephone Numbers
    (0x0040, 0x1400): "X",  # Requested Procedure Comments
    (0x0040, 0x2001): "X",  # Reason for the Imaging Service Request
    (0x0040, 0x2016): "X",  # Placer Order Number / Imaging Service Request
    (0x0040, 0x2017): "X",  # Filler Order Number / Imaging Service Request
    (0x0040, 0x2400): "X",  # Imaging Service Request Comments
    (0x0040, 0x3001): "X",  # Confidentiality Constraint on Patient Data Description
    (0x0040, 0xA075): "D",  # Verifying Observer Name
    (0x0040, 0xA073): "D",  # Verifying Observer Sequence
    (0x0040, 0xA088): "Z",  # Verifying Observer Identification Code Sequence
    (0x0040, 0xA123): "D",  # Person Name
    (0x0040, 0xA124): "U",  # UID
    (0x0040, 0xA730): "X",  # Content Sequence
    (0x0040, 0xDB0C): "U",  # Template Extension Creator UID
    (0x0040, 0xDB0D): "U",  # Template Extension Organization UID
    (0x0070, 0x0084): "Z",  # Content Creator's Name
    (0x0088, 0x0140): "U",  # Storage Media File-set UID
    (0x0400, 0x0100): "X",  # Digital Signature UID
    (0x0400, 0x0402): "X",  # Referenced Digital Signature Sequence
    (0x0400, 0x0403): "X",  # Referenced SOP Instance MAC Sequence
    (0x0400, 0x0404): "X",  # MAC
    (0x0400, 0x0550): "X",  # Modified Attributes Sequence
    (0x0400, 0x0561): "X",  # Original Attributes Sequence
    (0x2030, 0x0020): "X",  # Text String
    (0x3006, 0x0024): "U",  # Referenced Frame of Reference UID
    (0x3006, 0x00C2): "U",  # Related Frame of Reference UID
    (0x4000, 0x0010): "X",  # Arbitrary
    (0x4000, 0x4000): "X",  # Text Comments
    (0xFFFA, 0xFFFA): "X",  # Digital Signatures Sequence
}

# Retain Patient Characteristics Option (113108): kept instead of removed when asked.
PATIENT_CHARACTERISTICS: frozenset[tuple[int, int]] = frozenset(
    {
        (0x0010, 0x0040),  # Patient's Sex
        (0x0010, 0x1010),  # Patient's Age (ages over 89 become 090Y)
        (0x0010, 0x1020),  # Patient's Size
        (0x0010, 0x1030),  # Patient's Weight
        (0x0010, 0x2160),  # Ethnic Group
        (0x0010, 0x21A0),  # Smoking Status
        (0x0010, 0x21C0),  # Pregnancy Status
    }
)

# DICOM CID 7050 codes (scheme DCM) for De-identification Method Code Sequence (0012,0064)
PROFILE_CODES: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
}
