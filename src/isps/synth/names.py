"""Pakistani names as they are written in Punjab's registers, with their transliteration variants.

The generator writes one of the spellings of :data:`isps.registry.name_variants.VARIANTS` at
random (registers disagree on spelling); linkage reads the same table to put them back together.
"""

from __future__ import annotations

MALE = [
    "Ahmed", "Ali", "Usman", "Bilal", "Imran", "Asif", "Tariq", "Zahid", "Shahid", "Khalid",
    "Naveed", "Kashif", "Waqas", "Hamza", "Hassan", "Hussain", "Abdullah", "Umar", "Zubair", "Irfan",
    "Sajid", "Javed", "Aslam", "Akram", "Arshad", "Nadeem", "Rashid", "Saleem", "Shafiq", "Rizwan",
    "Fahad", "Faisal", "Adnan", "Yasir", "Amir", "Ghulam Rasool", "Ghulam Mustafa", "Allah Ditta",
    "Allah Bakhsh", "Nazir", "Bashir", "Manzoor", "Iqbal", "Yousaf", "Ramzan", "Rafiq", "Sadiq",
    "Abdul Rehman", "Abdul Ghafoor", "Mushtaq", "Ishfaq", "Zafar", "Anwar", "Pervaiz", "Shoaib", "Danish",
    "Ayaz", "Jamil", "Liaqat", "Khurram",
]
FEMALE = [
    "Fatima", "Ayesha", "Zainab", "Khadija", "Maryam", "Nasreen", "Shazia", "Rubina", "Parveen", "Bushra",
    "Sadia", "Asma", "Kausar", "Nusrat", "Samina", "Rukhsana", "Naseem", "Shamim", "Razia", "Sughra",
    "Kaneez", "Bilqees", "Tahira", "Nazia", "Saima", "Farzana", "Rehana", "Amna", "Hina", "Iqra",
    "Mehwish", "Sana", "Rabia", "Uzma", "Sumaira", "Irum", "Aasia", "Sakina", "Zubaida", "Hajra",
    "Noreen", "Shabana", "Ghazala", "Mumtaz", "Yasmeen", "Rashida", "Zahida", "Sobia", "Anam", "Laiba",
]
FAMILY = [
    "Khan", "Ahmed", "Hussain", "Ali", "Iqbal", "Malik", "Butt", "Chaudhry", "Rana", "Bhatti", "Awan",
    "Gondal", "Jutt", "Arain", "Qureshi", "Sheikh", "Siddiqui", "Rajput", "Mughal", "Baloch", "Khokhar",
    "Cheema", "Virk", "Sandhu", "Gujjar", "Ansari", "Shah", "Bukhari", "Javed", "Rehman", "Abbasi",
    "Niazi", "Dogar", "Mirza", "Hashmi", "Kamboh", "Tiwana", "Sial", "Wattoo", "Joiya",
]
# women's second names where no family name is written
FEMALE_SECOND = ["Bibi", "Begum", "Bano", "Khatoon", "Akhtar", "Naz"]


MALE_OCCUPATIONS = {
    "employed_formal": ["Government clerk", "School teacher", "Factory worker", "Police constable", "Bank officer", "Nurse"],
    "employed_informal": ["Driver", "Shop assistant", "Security guard", "Mechanic", "Cook", "Brick kiln worker"],
    "self_employed": ["Farmer", "Shopkeeper", "Tailor", "Rickshaw driver", "Vendor", "Carpenter", "Electrician"],
    "daily_wager": ["Labourer", "Mason", "Farm labourer", "Loader", "Painter"],
}
FEMALE_OCCUPATIONS = {
    "employed_formal": ["School teacher", "Lady health worker", "Nurse", "Garment factory worker"],
    "employed_informal": ["Domestic worker", "Cook", "Sweeper"],
    "self_employed": ["Stitching at home", "Embroidery at home", "Livestock rearing", "Beautician"],
    "daily_wager": ["Farm labourer", "Cotton picker", "Brick kiln worker"],
}

URBAN_LOCALITIES = [
    "Gulshan Colony", "Madina Town", "Samanabad", "Model Colony", "Ghulam Muhammad Abad", "Peoples Colony",
    "Rehmanpura", "Islampura", "Mohalla Islamabad", "Iqbal Town", "Jinnah Colony", "Sabzazar", "Shadbagh",
    "Garden Town", "Mohalla Rasoolpura", "Officers Colony", "Satellite Town", "Mohalla Qasimabad",
]
RURAL_SUFFIX = ["GB", "JB", "RB", "SB", "EB", "WB", "ML", "TDA"]
VILLAGE_PREFIX = ["Basti", "Mauza", "Dera", "Pind", "Kot", "Chak"]
