"""Knowledge bases: building one (files, chunks, embeddings, the index in Redis) and answering with one
(the process's copy of the matrix, micro-batched question embeddings, exact cosine search)."""
