"""A hand-written list of common given names (US usage), used to spot "First Last" names in text.

Names that are also common English or medical words (May, June, Iris, Mark, Will, Grace, Hope,
Rose, Bill, Pat, Ray, Art, ...) are left out on purpose: they are only caught in a name context
(a title, "Patient:", "signed by", ...).
"""

from __future__ import annotations

__all__ = ["FIRST_NAMES"]

_MALE = """
Aaron Adam Adrian Alan Albert Alejandro Alex Alexander Alfred Allen Alvin Andre Andrew Andy Angel
Anthony Antonio Arnold Arthur Austin Barry Benjamin Bernard Billy Blake Bobby Bradley Brandon Brendan
Brent Brett Brian Bruce Bryan Calvin Cameron Carl Carlos Cecil Chad Charles Charlie Chris Christian
Christopher Clarence Clifford Clinton Cody Colin Connor Corey Craig Curtis Dale Dallas Damian Daniel
Danny Darrell Darren Darryl David Dean Dennis Derek Derrick Devin Dominic Donald Douglas Duane Dustin
Dwayne Dwight Earl Eddie Edgar Eduardo Edward Edwin Elijah Elliot Emmanuel Enrique Eric Erik Ernest
Ethan Eugene Evan Everett Felix Fernando Floyd Francis Francisco Frank Franklin Fred Frederick Gabriel
Garrett Gary Gavin Gene Geoffrey George Gerald Gilbert Glenn Gordon Grant Greg Gregory Harold Harry
Harvey Hector Henry Herbert Herman Howard Hugh Hunter Ian Isaac Ivan Jack Jacob Jake James Jamie Jared
Jason Javier Jay Jeffrey Jeremy Jerome Jerry Jesse Jesus Jimmy Joe Joel John Johnny Jonathan Jordan
Jorge Jose Joseph Joshua Juan Julian Justin Karl Keith Kenneth Kevin Kurt Kyle Lance Larry Lawrence
Lee Leon Leonard Leroy Leslie Lewis Liam Lloyd Logan Lonnie Louis Lucas Luis Luke Malcolm Manuel Marcus
Mario Marshall Martin Marvin Mason Matthew Maurice Max Melvin Michael Miguel Mike Milton Mitchell
Nathan Nathaniel Neil Nelson Nicholas Noah Norman Oliver Omar Oscar Owen Pablo Patrick Paul Pedro Perry
Peter Philip Phillip Rafael Ralph Ramon Randall Randy Raymond Reginald Ricardo Richard Ricky Robert
Roberto Rodney Roger Roland Ronald Ronnie Ross Roy Ruben Russell Ryan Samuel Scott Sean Sergio Seth
Shane Shawn Sidney Simon Stanley Stephen Steve Steven Stuart Ted Terrence Terry Theodore Thomas Timothy
Todd Tommy Tony Travis Trevor Troy Tyler Vernon Victor Vincent Walter Warren Wayne Wesley William Willie
Zachary
"""

_FEMALE = """
Abigail Ada Adriana Agnes Alexandra Alexis Alice Alicia Alison Allison Alma Alyssa Amanda Amber Amelia
Amy Ana Andrea Angela Angelica Anita Ann Anna Anne Annette Antoinette Ashley Audrey Barbara Beatrice
Becky Belinda Bernadette Bertha Bessie Beth Betty Beverly Bonnie Brenda Brianna Bridget Brittany Brooke
Camille Candace Carla Carmen Carol Caroline Carolyn Carrie Cassandra Catherine Cathy Cecilia Charlene
Charlotte Chelsea Cheryl Christina Christine Cindy Claire Clara Claudia Colleen Connie Constance Courtney
Cynthia Daisy Dana Danielle Darlene Debbie Deborah Debra Delores Denise Diana Diane Dolores Donna Dora
Doris Dorothy Edith Edna Eileen Elaine Eleanor Elena Elisa Elizabeth Ella Ellen Eloise Elsie Emily Emma
Erica Erin Esther Ethel Eva Evelyn Fiona Florence Frances Gabriela Gabrielle Gail Gertrude Gina Gladys
Glenda Gloria Gwendolyn Hannah Harriet Hazel Heather Heidi Helen Henrietta Holly Ida Irene Isabel
Isabella Jackie Jacqueline Jane Janet Janice Jasmine Jean Jeanette Jeanne Jennifer Jenny Jessica Jill
Joan Joann Joanne Jocelyn Josephine Joyce Juanita Judith Judy Julia Julie Karen Katherine Kathleen Kathryn
Kathy Katie Kayla Kelly Kimberly Kristen Kristin Kristina Laura Lauren Laurie Leah Leona Lillian Linda
Lisa Lois Loretta Lorraine Louise Lucille Lucy Lydia Lynn Mabel Madeline Madison Mae Marcia Margaret
Margarita Maria Marian Marie Marilyn Marjorie Marlene Martha Mary Maureen Megan Melanie Melissa Mildred
Minnie Miranda Miriam Monica Nancy Naomi Natalie Natasha Nellie Nicole Nina Nora Norma Olga Olivia
Pamela Patricia Paula Pauline Peggy Penelope Phyllis Priscilla Rachel Ramona Rebecca Regina Renee Rhonda
Rita Roberta Robin Rosa Rosemary Ruth Sabrina Sally Samantha Sandra Sara Sarah Sharon Sheila Shelby
Shirley Sofia Sonia Sophia Stacy Stella Stephanie Susan Suzanne Sylvia Tamara Tammy Tanya Teresa Theresa
Tiffany Tina Tracy Valerie Vanessa Vera Veronica Vicki Victoria Viola Violet Virginia Vivian Wanda Wendy
Whitney Wilma Yolanda Yvonne Zoe
"""

FIRST_NAMES: frozenset[str] = frozenset((_MALE + _FEMALE).split())
