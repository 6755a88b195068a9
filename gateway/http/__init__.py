"""The HTTP shell: the only package that imports Starlette. It
translates requests into calls on ``gateway.interactions`` and results and
errors back into FHIR responses."""
