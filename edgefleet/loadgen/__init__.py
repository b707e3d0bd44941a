"""E-commerce-like load: a seeded catalogue, Zipf popularity, image variants, a flash sale, crawlers."""
