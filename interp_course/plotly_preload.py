"""``import interp_course.plotly_preload``: import what a kernel's first plotly figure imports.

plotly imports its figure classes, their validators and templates, and plotly express its
dataframe backend (narwhals) lazily, when the first figure is made: ~0.25 s of every grading
kernel's run. Listed in a zygote's ``zygote_preload``, this module makes one bar chart and one
line chart of made-up numbers and drops them, so the zygote holds those modules and each kernel
forked from it starts with them. It holds no data of any course or student.
"""

import plotly.express as px

px.bar(x=[0.0, 1.0], y=[1.0, 2.0])
px.line(x=[0, 1], y=[1.0, 2.0])
