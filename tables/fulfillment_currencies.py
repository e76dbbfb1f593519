"""ISO-4217 codes a shop can charge in (standard library data, no lookups at runtime).

Precious metals, testing codes and fund/unit-of-account codes (XAU, XTS, XXX, BOV, CLF, USN...)
are ISO-4217 too, but no storefront or marketplace settles orders in them, so an event that
carries one is treated as malformed. Keep this list in step with ISO amendments (for example
XCG replaced ANG in 2025 and ZWG replaced ZWL in 2024; the old codes stay accepted while feeds
catch up).
"""

from __future__ import annotations

_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB
    TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF
    XPF YER ZAR ZMW ZWG ZWL
"""

CURRENCY_CODES: frozenset[str] = frozenset(_CODES.split())
