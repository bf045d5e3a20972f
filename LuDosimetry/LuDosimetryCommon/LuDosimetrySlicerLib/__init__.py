"""Edge code shared by the LuDosimetry Slicer modules: MRML nodes ↔ LuDosimetryLib types.

Only conversion and storage live here (no science): volume nodes ↔ SimpleITK images (RAS ↔ LPS,
KJI ↔ IJK), transform nodes from SimpleITK transforms, tables and plot charts from result rows,
node attributes and the subject hierarchy.
"""
