"""reportgen inside other tools. Each integration is its own module and imports its tool only when used:

- ``reportgen.integrations.mai_bias``: a module for the MAI-BIAS toolkit (needs ``reportgen[mai-bias]``).
"""
