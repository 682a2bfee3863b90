"""Dispatch: the truck yard of Melon Hall.

Every trade becomes a shipment; trucks check in at the gate; logistics staff put shipments on
trucks (refrigerated where the buyer asked for cold chain) within each truck's capacity. The
service keeps no database: it rebuilds the yard from the trades, truck and assignment topics.
"""
