"""MinHash near-deduplication in phases that each run as tasks over groups of shards or over
partitions, so a task's memory is bounded by a group or a partition, never by the corpus:

1. :mod:`.signatures` (map over groups of consecutive shards, ``dedup.group_docs`` documents
   each): shingles -> MinHash -> one bucket key per band (+ an exact-text key); per band one
   file ``bands/band=BB/group=GGGGG.parquet`` with one row group per key range (``key % R``:
   a shuffle file, :mod:`.shuffle`), plus every shard's full signatures.
2. :mod:`.bands` (map over bands x key ranges): reads row group r of every group's file of
   its band; documents sharing a key form a group, whose smallest document id is its root
   (optionally verified against the full signatures). Written as member -> root edges,
   ``components/band=BB-range=RRRR.parquet``. R is ``dedup.partitions``, or with ``auto`` one
   range per ``dedup.partition_docs`` documents, so a band task never grows with the corpus.
3. :mod:`.components`: the edges of every band joined into components by rounds of partition
   tasks (alternating large-star / small-star), the sizes and representatives assigned per
   partition, and ``clusters/part-SSSSS.parquet`` (row, root, cluster size) written per group
   of shards.
4. :mod:`.filter` (map over document shards): keep a document unless it is in a cluster and
   is not its root (the smallest id: the earliest document in input order); record the
   cluster size, optionally write the kept one several times (rehydration).

Ids, paths and schemas are in :mod:`.layout`, the settings in :mod:`.config`, the stage that
maps the phases in :mod:`.stage`. Documents of an earlier run's index (``dedup.index``) join
the band groups with ids below this run's, so they are always the representative: a new
document that duplicates an already published one is removed, and the index itself is never
changed. Every unit of work writes atomically and leaves a done-marker keyed on the whole
dedup input (every input shard's key and the parameters), so a rerun resumes at the unit that
failed and a changed input starts the dedup work over.

Each phase's ``*_unit`` function is what one mapped task runs (plain functions: tests call
them directly); its ``*Work`` dataclass is the typed item the mapper ships to a worker.
``key`` is the dedup work key: every unit's done-marker records it, so a unit is redone when
anything upstream changed, and the stage wipes the work folder when the key changes.
"""

from winnow.tasks.dedup.stage import DedupStage

__all__ = ["DedupStage"]
