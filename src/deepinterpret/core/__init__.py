"""The ground floor: framework-neutral helpers every layer may use (argument checks, seeded noise, the batching
engine, small numerics). Nothing here imports torch or paddle."""
