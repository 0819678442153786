"""The spellings of Pakistani names seen in Punjab's registers: each canonical spelling and its
transliteration variants.

Identity resolution (:mod:`isps.linkage.names`) folds the variants back to one spelling and the
synthetic generator (:mod:`isps.synth`) writes them; the table sits in the registry, below both, so
that neither borrows it from the other. Spellings outside the table are left to the phonetic keys of
:mod:`isps.linkage.names`.
"""

from __future__ import annotations

VARIANTS: dict[str, list[str]] = {
    "Muhammad": ["Mohammad", "Muhammed", "Mohammed", "Mohd", "M."],
    "Ahmed": ["Ahmad", "Ahmd"],
    "Hussain": ["Husain", "Hussein", "Hosain"],
    "Usman": ["Osman", "Usmaan"],
    "Yousaf": ["Yusuf", "Yousuf", "Yosaf"],
    "Chaudhry": ["Chaudhary", "Ch.", "Choudhry"],
    "Qureshi": ["Qurashi", "Kureshi"],
    "Abdul Rehman": ["Abdur Rahman", "Abdul Rahman", "A. Rehman"],
    "Rehman": ["Rahman", "Rahmaan"],
    "Ghulam Rasool": ["Ghulam Rasul", "G. Rasool"],
    "Ghulam Mustafa": ["Ghulam Mustfa", "G. Mustafa"],
    "Allah Ditta": ["Alla Ditta", "Allah Dita"],
    "Allah Bakhsh": ["Allah Bux", "Allah Baksh"],
    "Zubair": ["Zobair", "Zubiar"],
    "Fatima": ["Fatma", "Fatimah"],
    "Ayesha": ["Aisha", "Aysha", "Ayisha"],
    "Zainab": ["Zenab", "Zeinab"],
    "Khadija": ["Khadijah", "Khdija"],
    "Maryam": ["Mariam", "Mariyam"],
    "Nasreen": ["Nasrin", "Nasreeen"],
    "Rubina": ["Robina", "Rubeena"],
    "Parveen": ["Perveen", "Parvin"],
    "Kausar": ["Kosar", "Kauser"],
    "Yasmeen": ["Yasmin", "Yasmine"],
    "Shamim": ["Shameem"],
    "Naseem": ["Nasim"],
    "Iqbal": ["Iqbaal", "Ikbal"],
    "Pervaiz": ["Parvez", "Pervez"],
    "Javed": ["Javaid", "Jawed"],
    "Saleem": ["Salim"],
    "Rafiq": ["Rafique"],
    "Shafiq": ["Shafique"],
    "Ishfaq": ["Ishfaque"],
    "Aslam": ["Aslum"],
    "Bibi": ["Bibbi", "Bi Bi"],
    "Begum": ["Begam", "Baigum"],
    "Sughra": ["Soughra", "Sugra"],
    "Bilqees": ["Bilquis", "Bilqis"],
    "Hajra": ["Hajira", "Hajrah"],
    "Amna": ["Aamna", "Amina"],
}
